"""The health page's charts at scale: legends beside or below what they explain, never over it;
a run that paused for hours is drawn on a broken axis, not as slivers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from onepin_etl import charts

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def paused_run() -> pd.DataFrame:
    """Three steps, then a 7-hour pause, then two more (the last one failed)."""
    offsets = [(0, 40, "completed"), (40, 95, "completed"), (95, 100, "cancelled"),
               (100 + 7 * 3600, 160 + 7 * 3600, "completed"),
               (160 + 7 * 3600, 230 + 7 * 3600, "failed")]
    return pd.DataFrame([{"node_display_name": f"node {i}", "iteration": 1, "status": status,
                          "started_at": T0 + timedelta(seconds=a),
                          "completed_at": T0 + timedelta(seconds=b)}
                         for i, (a, b, status) in enumerate(offsets)])


def test_idle_stretches_break_the_axis_only_when_long() -> None:
    assert charts.active_stretches([(0, 10), (5, 20)]) == [(0, 20)]
    assert charts.active_stretches([(0, 100), (200, 300)]) == [(0, 300)]  # 100 s idle: kept
    assert charts.active_stretches([(0, 100), (25300, 25400)]) == [(0, 100), (25300, 25400)]
    # idle for less than the steps' own time together: kept
    assert charts.active_stretches([(0, 5000), (5700, 9000)]) == [(0, 9000)]
    # the three longest idle stretches at most
    assert charts.active_stretches([(0, 1), (1000, 1001), (3000, 3001), (6000, 6001),
                                    (10000, 10001)]) == [(0, 1001), (3000, 3001), (6000, 6001),
                                                         (10000, 10001)]


def test_a_paused_run_gets_a_broken_axis_and_its_legend_covers_no_bar() -> None:
    fig = charts.timeline_figure(paused_run(), "Latest failed run")
    fig.canvas.draw()
    first, second = fig.axes
    assert first.get_xlim() == (-3.0, 103.0)  # each panel on its own true scale, padded 3%
    assert second.get_xlim() == pytest.approx((25296.1, 25433.9))
    assert "+7 h with no step running" in [t.get_text() for t in second.texts]
    drawn = second.get_legend()
    assert drawn is not None
    legend = drawn.get_window_extent()
    bars = [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle)]
    assert bars and not any(legend.overlaps(b.get_window_extent()) for b in bars)
    plt.close(fig)


def test_thirty_workflows_legend_covers_neither_title_nor_lines() -> None:
    daily = pd.DataFrame([{"workflow_name": f"Support macros #{w}", "day": day,
                           "pass_rate": (w % 10) / 10}
                          for w in range(30) for day in ("2026-01-04", "2026-01-05")])
    fig = charts.trend_figure(daily)
    fig.canvas.draw()
    (ax,) = fig.axes
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 30
    legend = fig.legends[0].get_window_extent()
    covered = ax.get_tightbbox()  # the title, the lines, the axis labels
    assert covered is not None and not legend.overlaps(covered)
    plt.close(fig)


def test_durations_read_as_a_person_says_them() -> None:
    assert [charts.duration_text(s) for s in (50, 45 * 60, 7 * 3600, 7 * 3600 + 120)] == [
        "50 s", "45 min", "7 h", "7 h 2 min"]
