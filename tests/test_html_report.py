"""The HTML health page: self-contained, the views' numbers, deterministic, and as a person sees
it in a real browser (headless Chromium driven by Playwright)."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from onepin_etl import analysis, health, html_report
from onepin_etl.destinations import Target
from onepin_sim import Simulator
from tests.helpers import SMALL

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


class Tables(HTMLParser):
    """``{table id: [[data-value, ...], ...]}`` and every tag name seen."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str]] = []
        self._current: str | None = None
        self._body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        self.attributes += [(k, v or "") for k, v in attrs]
        if tag == "table" and (values.get("id") or "").startswith("table-"):
            self._current = str(values["id"]).removeprefix("table-")
            self.tables[self._current] = []
        elif tag == "tbody" and self._current is not None:
            self._body = True
        elif tag == "tr" and self._current is not None and self._body:
            self.tables[self._current].append([])
        elif tag == "td" and self._current is not None:
            self.tables[self._current][-1].append(values.get("data-value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._current, self._body = None, False


@pytest.fixture
def page(sim: Simulator, cli: Any, workdir: Path) -> Path:
    cli("load")
    sim.advance(8 * 3600)
    cli("load")
    now = datetime.fromtimestamp(sim.clock.now_ms / 1000, tz=UTC).isoformat()
    cli("report", "--format", "html", "--output", "health.html", "--as-of", now)
    return workdir / "health.html"


def test_the_page_shows_the_views_numbers(page: Path, workdir: Path) -> None:
    parsed = Tables()
    parsed.feed(page.read_text(encoding="utf-8"))
    with analysis.connect(duckdb_path=workdir / "onepin_etl.duckdb") as con:
        for name in analysis.QUESTIONS:
            expected = [[html_report._raw(v) for v in row]
                        for row in analysis.ask(con, name, 10).itertuples(index=False)]
            assert parsed.tables.get(name, []) == expected, name
    assert len(parsed.tables["workflows"]) == SMALL.workflows
    assert parsed.tables["slowest_nodes"] and parsed.tables["failing_nodes"]


def test_the_page_is_self_contained(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    parsed = Tables()
    parsed.feed(text)
    assert not parsed.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert not [v for k, v in parsed.attributes if k in ("src", "href")]
    assert "http://" not in text.replace("http://www.w3.org/", "")  # SVG namespaces only
    assert "https://" not in text
    assert text.count('class="chart"') == 4  # trend, durations, failure by type, timeline


def test_the_page_is_deterministic_for_the_same_data(page: Path, workdir: Path) -> None:
    target = Target(duckdb_path=str(workdir / "onepin_etl.duckdb"))
    checks = health.CheckConfig(as_of=datetime(2026, 1, 9, tzinfo=UTC))
    when = datetime(2026, 2, 1, tzinfo=UTC)
    first = html_report.build_page(target, checks=checks, generated_at=when)
    again = html_report.build_page(target, checks=checks, generated_at=when)
    assert first == again
    later = html_report.build_page(target, checks=checks, generated_at=datetime.now(UTC))
    stamp = re.compile(r'id="generated-at">[^<]*<')
    assert stamp.sub("", later) == stamp.sub("", first)  # only "generated at" changes


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: apt-get install "
                                             "chromium (.ci/run does)")
@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)], ids=["laptop", "phone"])
def test_a_real_browser_shows_every_chart_without_errors_or_requests(
        page: Path, width: int, height: int) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            view = browser.new_page(viewport={"width": width, "height": height})
            view.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            view.on("pageerror", lambda e: errors.append(str(e)))
            view.on("request", lambda r: requests.append(r.url))
            view.goto(page.as_uri(), wait_until="load")
            boxes = view.eval_on_selector_all(
                "svg.chart", "charts => charts.map(c => { const r = c.getBoundingClientRect();"
                " return [r.width, r.height]; })")
            page_width = view.evaluate("document.documentElement.scrollWidth")
            headings = view.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        finally:
            browser.close()
    assert errors == []
    assert requests == [page.as_uri()]  # the page itself, nothing else
    assert len(boxes) == 4 and all(w > 100 and h > 50 for w, h in boxes), boxes
    assert page_width <= width  # tables scroll inside their box; the page does not
    assert headings == ["Data freshness and the last loads", "Regressions and failing checks",
                        "Runs per workflow", "Slowest nodes (p95 of completed steps)",
                        "Failure rates", "Retries and flaky nodes", "Most frequent errors",
                        "The latest failed run"]
