"""The benchmark runs from a checkout and reports every figure (slow: a quick run takes ~40 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bench.run import BENCH_END, BENCH_START, PAGE, write_into_page

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    published = PAGE.read_text("utf-8")
    done = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["measures"]) == {
        "project", "reload", "naive", "faults", "constant", "arrow", "arrow_again", "dicts", "raw",
        "inc_first_earlier", "inc_first_changes", "inc_unchanged_earlier",
        "inc_unchanged_changes"}
    incremental = results["incremental"]
    assert incremental["unchanged_requests"] < incremental["unchanged_requests_earlier"]
    assert [c["change"] for c in results["changes"]] == [
        "nothing", "the next new run", "the next open run ends"]
    nothing = results["changes"][0]
    assert (nothing["new_runs"], nothing.get("steps", 0)) == (0, 0)
    # a file per table and load, more for the first load's pieces (docs/big-loads.md)
    assert results["compaction"]["files"] > 3 * results["compaction"]["loads"]
    steps = results["measures"]["project"]["rows"]["run_steps"]
    assert steps > 0
    for name in ("naive", "faults"):
        assert results["measures"][name]["rows"]["run_steps"] == steps
    assert results["faults_tables_identical"] is True
    assert results["measures"]["reload"]["requests"] < results["measures"]["project"]["requests"]
    figures = results["figures"]
    for key in ("speedup_vs_naive", "project_vs_lower_bound", "fault_slowdown",
                "arrow_rows_per_s", "arrow_vs_dicts", "raw_vs_arrow", "arrow_peak_rss_mb",
                "small_load_into_big_table_s"):
        assert figures[key] > 0, key
    # a smoke run's figures are not published
    assert PAGE.read_text("utf-8") == published


def test_the_table_goes_between_the_markers_of_the_performance_page(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\nLatest run:\n\n{BENCH_START}\n| old |\n{BENCH_END}\n\n"
                    "What it shows.\n", "utf-8")
    write_into_page("| job |\n|---|\n| new |\n", page)
    assert page.read_text("utf-8") == (f"# Performance\n\nLatest run:\n\n{BENCH_START}\n"
                                       f"| job |\n|---|\n| new |\n{BENCH_END}\n\nWhat it shows.\n")
    # the published page has its markers, once each
    published = PAGE.read_text("utf-8")
    assert (published.count(BENCH_START), published.count(BENCH_END)) == (1, 1)


def test_a_page_without_markers_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n", "utf-8")
    with pytest.raises(click.ClickException, match="has no <!-- bench:start --> … "
                       "<!-- bench:end --> markers; put them where the table goes"):
        write_into_page("| job |\n", page)
    assert page.read_text("utf-8") == "# Performance\n"


@pytest.mark.slow
def test_quick_limits_benchmark_keeps_the_quota_and_the_budget(tmp_path: Path) -> None:
    out = tmp_path / "limits.json"
    done = subprocess.run([sys.executable, "-m", "bench.limits", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    (quota,) = results["quota"]
    assert quota["answered"] > 500
    assert results["budget"]["most_in_any_60_s"] <= results["budget"]["budget"]
    assert [r["world"] for r in results["free"]] == ["50 × 100 runs, 25 ms",
                                                     "1000 × 3 runs, 50 ms"]
    assert all(r["no_latency_s"] > 0 and r["requests"] > 0 for r in results["free"])
    assert all(r["default_s"] == r["default_runs_s"][0] for r in results["free"])  # one run
    assert (tmp_path / "limits.md").read_text().startswith("| quota-bound first load |")
    if quota["throttled_share"] > 0.02:  # issue #20's target, not met: shown, not hidden
        pytest.xfail(f"{quota['throttled_share']:.1%} of requests got a 429 (target 2%): the "
                     "first window's discovery costs the requests then in flight, a large share "
                     "of an 800-request load (docs/performance.md#the-apis-limits)")


@pytest.mark.slow
def test_resume_benchmark_reports_every_kill(tmp_path: Path) -> None:
    out = tmp_path / "resume.json"
    done = subprocess.run([sys.executable, "-m", "bench.resume", "--workflows", "60",
                           "--latency-ms", "5", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["killed_at"] for r in rows] == [0.25, 0.5, 0.75, 0.95]
    assert all(r["clean_requests"] == 241 for r in rows)  # 1 + 60 x (1 page + 3 steps)
    assert (tmp_path / "resume.md").read_text().startswith("| killed at |")


@pytest.mark.slow
def test_quick_latency_benchmark_sets_each_load_beside_fixed_concurrency_and_a_plain_fetch(
        tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    done = subprocess.run([sys.executable, "-m", "bench.latency", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["profile"] for r in rows] == ["lognormal", "bimodal"]
    for row in rows:
        assert row["requests"] == 1 + 4 + 4 * 20  # the workflows page, 4 listings, 80 steps
        assert set(row["fixed_s"]) == {"32"} and row["fetch_s"] > 0
        assert row["vs_best_fixed"] > 0 and row["default_most_in_flight"] >= 1


@pytest.mark.slow
def test_scale_benchmark_reports_the_first_load_and_both_re_loads(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run([sys.executable, "-m", "bench.scale", "--sizes", "30", "--out",
                           str(out), "--no-page"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["first"]["requests"] == 1 + 30 + 300 and row["first"]["packages"] >= 1
    assert row["unchanged"]["packages"] == 1 and row["one_changed"]["new_runs"] >= 1
    assert row["one_changed"]["packages"] <= 2
