"""Every relative link of the README and ``docs/`` resolves: the file exists and, for a
``#anchor``, the page has a heading with that slug (GitHub's rules), so moving a section between
pages cannot silently break the way to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), ROOT / "CHANGELOG.md"])
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The page without its code blocks, whose ``#`` lines and brackets are not Markdown."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (code spans and links reduced to their text),
    lower case, punctuation dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets ``-1``, ``-2``… as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page.read_text("utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    """The page's links that are not to the web (nor to a mail address)."""
    text = CODE_SPAN.sub("", prose(page.read_text("utf-8")))
    return [target for target in LINK.findall(text)
            if not re.match(r"[a-z][a-z+.-]*:", target)]


def broken(page: Path, root: Path = ROOT) -> list[str]:
    """Each link of ``page`` that leads nowhere, with why (files named from ``root``)."""
    problems = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page.resolve()
        name = file.relative_to(root)
        if not file.exists():
            problems.append(f"{target}: no file {name}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{target}: no heading with anchor #{anchor} in {name}")
    return problems


def test_slugs_follow_githubs_rules() -> None:
    assert slug("Why two environments: DuckDB 2.0 and DuckDB 1.4.4") == (
        "why-two-environments-duckdb-20-and-duckdb-144")
    assert slug("The lock and `--wait`") == "the-lock-and---wait"
    assert slug("What the tables hold (dataset `onepin`)") == "what-the-tables-hold-dataset-onepin"
    assert slug("Analysts' SQL: the data dictionary and the cookbook") == (
        "analysts-sql-the-data-dictionary-and-the-cookbook")
    assert slug("The quota: what is learned, and what is assumed") == (
        "the-quota-what-is-learned-and-what-is-assumed")


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Same\n\n## Same\n\n[ok](#same-1) [no anchor](#other) "
                    "[no file](gone.md) [web](https://example.com) `[code](gone.md)`\n\n"
                    "```bash\n# not a heading\n[x](also-gone.md)\n```\n", "utf-8")
    assert broken(page, tmp_path.resolve()) == [
        "#other: no heading with anchor #other in page.md", "gone.md: no file gone.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken(page) == []


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for target in relative_links(ROOT / "README.md")}
    assert [p.name for p in PAGES if p.parent.name == "docs" and p not in linked] == []
