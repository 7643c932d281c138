"""Charts for the HTML health page: matplotlib figures as inline SVG.

Why matplotlib to SVG: it is already the notebook's library, it needs no JavaScript (the page
works offline and in a mail client's viewer) and its SVG scales on any screen. Text stays text
(``svg.fonttype = none``): the browser draws node names with its own fonts and their fallbacks,
so an emoji or CJK name is not an empty box. The output is deterministic for the same data: no
date in the metadata and a fixed hash salt for element ids.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

STATUS_COLORS = {"completed": "#4f81bd", "failed": "#c0504d", "cancelled": "#9e9e9e",
                 "running": "#f79646", "pending": "#d9d9d9", "paused": "#8064a2"}
OTHER_COLOR = "#4bacc6"
# Text is measured with matplotlib's own DejaVu Sans but drawn by the browser, which finds a
# font for each glyph DejaVu lacks (emoji, CJK): matplotlib's "glyph missing" warnings are moot.
# Legends beside their axes, never over bars or lines (bbox_inches="tight" keeps them in)
BESIDE: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0}
LEGEND_ROW_IN = 0.17  # height of one legend row at font size 7, inches
PAUSE_BREAK_S = 600  # a timeline's axis breaks at a longer stretch with no step running
MAX_BREAKS = 3
_STYLE: Any = {"svg.fonttype": "none", "svg.hashsalt": "onepin", "font.size": 9,
               "axes.spines.top": False, "axes.spines.right": False}


def to_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element that scales to its container."""
    buffer = io.StringIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    # The RDF metadata block only names matplotlib; dropping it keeps the page free of URLs.
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", buffer.getvalue(), flags=re.DOTALL)
    start = svg.index("<svg")
    # Keep the viewBox, drop the fixed size: CSS sets the width, the height follows.
    head_end = svg.index(">", start)
    head = svg[start:head_end]
    for attribute in ("width", "height"):
        head = _drop_attribute(head, attribute)
    return head + ' class="chart" role="img"' + svg[head_end:]


def _drop_attribute(tag: str, name: str) -> str:
    marker = f' {name}="'
    at = tag.find(marker)
    if at < 0:
        return tag
    end = tag.index('"', at + len(marker))
    return tag[:at] + tag[end + 1:]


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    """A figure and its axes; callers draw and save inside ``plt.rc_context(_STYLE)``."""
    fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def pass_rate_trend(daily: pd.DataFrame) -> str:
    """Pass rate per workflow per UTC day (``workflow_daily``)."""
    with plt.rc_context(_STYLE):
        return to_svg(trend_figure(daily))


def trend_figure(daily: pd.DataFrame) -> Figure:
    """The pass-rate chart. Its legend goes below it, in as many rows as the workflows need: at
    30 workflows, inside it covered the title and the lines."""
    names = daily["workflow_name"].nunique()
    columns = 3
    fig, ax = plt.subplots(figsize=(8, 3.2 + LEGEND_ROW_IN * -(-names // columns)),
                           layout="constrained")
    for name, group in daily.groupby("workflow_name", sort=True):
        ax.plot(pd.to_datetime(group["day"]), group["pass_rate"] * 100, marker="o",
                markersize=3, label=str(name))
    ax.set(title="Run pass rate per day", xlabel="day (UTC)", ylabel="pass rate (%)",
           ylim=(0, 105))
    days = pd.to_datetime(daily["day"])
    if days.nunique() == 1:  # one day: a week around it, not matplotlib's four years
        middle = float(mdates.date2num(days.min()))
        ax.set_xlim(middle - 3, middle + 3)
    days_shown = (days.max() - days.min()).days + 1
    locator = mdates.DayLocator(interval=max(1, -(-days_shown // 8)))  # days, not 12:00
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.legend(title="workflow", fontsize=7, loc="outside lower center", ncol=columns)
    return fig


def duration_distributions(steps: pd.DataFrame, labels: list[str]) -> str:
    """Box plots of completed step durations for the nodes in ``labels`` (slowest first)."""
    with plt.rc_context(_STYLE):
        fig, ax = _figure(8, 0.38 * len(labels) + 1.2)
        data = [steps.loc[steps.label == label, "duration_ms"] / 1000 for label in labels]
        ax.boxplot(data, orientation="horizontal", showfliers=False,
                   medianprops={"color": "#c0504d"})
        ax.set_yticks(range(1, len(labels) + 1), labels)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set(title="Step duration, slowest nodes (completed steps)",
               xlabel="duration (seconds, log scale)")
        ax.legend(handles=[Patch(facecolor="white", edgecolor="black", label="middle 50%"),
                           Patch(color="#c0504d", label="median")], fontsize=7,
                  **BESIDE)
        return to_svg(fig)


def failure_rate_by_type(types: pd.DataFrame) -> str:
    """Failure rate per node type, labelled with failed / (completed + failed)."""
    frame = types.sort_values(["failure_rate", "node_type"], na_position="first")
    with plt.rc_context(_STYLE):
        fig, ax = _figure(8, 0.32 * len(frame) + 1.2)
        rates = frame["failure_rate"].fillna(0) * 100
        bars = ax.barh(frame["node_type"], rates, color=STATUS_COLORS["failed"], label="failed")
        for bar, failed, completed in zip(bars, frame["failed"], frame["completed"],
                                          strict=True):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                    f" {failed}/{failed + completed}", va="center", fontsize=7)
        ax.set(title="Step failure rate by node type", xlabel="failure rate (%)")
        ax.legend(handles=[Patch(color=STATUS_COLORS["failed"],
                                 label="failed ÷ (completed + failed),\nlabel: counts")],
                  fontsize=7, **BESIDE)
        return to_svg(fig)


def run_timeline(steps: pd.DataFrame, title: str) -> str:
    """One run's step attempts as bars from start to end, coloured by status
    (:func:`timeline_figure`)."""
    with plt.rc_context(_STYLE):
        return to_svg(timeline_figure(steps, title))


def timeline_figure(steps: pd.DataFrame, title: str) -> Figure:
    """The timeline chart, its legend beside the last panel.

    A run can pause for hours between two steps; on one linear axis its steps would be
    slivers. So the axis is broken at each stretch with no step running that is longer than
    :data:`PAUSE_BREAK_S` and than all the steps' own time together (at most
    :data:`MAX_BREAKS`, the longest): one panel per active stretch, each on its own true scale
    in seconds since the run's first step started, the break marked and labelled with how long
    nothing ran.
    """
    start = steps["started_at"].min()
    last = steps[["started_at", "completed_at"]].max().max()
    bars = []
    for row in steps.to_dict("records"):
        end = row["completed_at"] if pd.notna(row["completed_at"]) else last
        left = (row["started_at"] - start).total_seconds()
        bars.append((left, max((end - row["started_at"]).total_seconds(), 0.5),
                     STATUS_COLORS.get(str(row["status"]), OTHER_COLOR)))
    labels = [f"{r['node_display_name']} (#{r['iteration']})" for r in steps.to_dict("records")]
    panels = active_stretches([(left, left + width) for left, width, _ in bars])
    spans = [b - a for a, b in panels]
    fig, axes = plt.subplots(
        1, len(panels), sharey=True, squeeze=False,
        figsize=(8, 0.34 * len(steps) + 1.4),
        gridspec_kw={"wspace": 0.06, "width_ratios": [max(s, 0.12 * sum(spans))
                                                      for s in spans]})
    row_axes = list(axes[0])
    for ax, (begin, end) in zip(row_axes, panels, strict=True):
        for y, (left, width, color) in enumerate(bars):
            ax.barh(y, width, left=left, color=color)
        pad = max(0.03 * (end - begin), 1.0)
        ax.set_xlim(begin - pad, end + pad)
    row_axes[0].set_yticks(range(len(labels)), labels)
    row_axes[0].invert_yaxis()
    for before, after, (_, gap_start), (gap_end, _) in zip(
            row_axes, row_axes[1:], panels, panels[1:], strict=False):
        _mark_break(before, after, gap_end - gap_start)
    xlabel = "seconds since the run's first step started"
    if len(panels) > 1:
        xlabel += " (axis broken where no step ran)"
        fig.suptitle(title, fontsize=plt.rcParams["axes.titlesize"])
    else:
        row_axes[0].set_title(title)
    fig.supxlabel(xlabel, fontsize=plt.rcParams["axes.labelsize"])
    shown = sorted(set(steps["status"].astype(str)))
    row_axes[-1].legend(handles=[Patch(color=STATUS_COLORS.get(s, OTHER_COLOR), label=s)
                                 for s in shown], title="step status", fontsize=7, **BESIDE)
    return fig


def active_stretches(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The stretches of the timeline to draw: the steps' span, cut where nothing ran for longer
    than ``PAUSE_BREAK_S`` and than the steps' own time together (the longest ``MAX_BREAKS``
    such gaps)."""
    merged: list[list[float]] = []
    for begin, end in sorted(intervals):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    busy = sum(end - begin for begin, end in merged)
    gaps = [(a[1], b[0]) for a, b in zip(merged, merged[1:], strict=False)
            if b[0] - a[1] > max(PAUSE_BREAK_S, busy)]
    gaps = sorted(sorted(gaps, key=lambda g: g[0] - g[1])[:MAX_BREAKS])
    edges = [merged[0][0], *(t for gap in gaps for t in gap), merged[-1][1]]
    return list(zip(edges[::2], edges[1::2], strict=True))


def _mark_break(before: Any, after: Any, seconds: float) -> None:
    """The two slanted ticks of a broken axis, and how long nothing ran."""
    before.spines["right"].set_visible(False)
    after.spines["left"].set_visible(False)
    after.tick_params(axis="y", left=False)
    marks = {"marker": [(-1, -2), (1, 2)], "markersize": 8, "linestyle": "none",
             "color": "black", "mec": "black", "mew": 1, "clip_on": False}
    before.plot([1], [0], transform=before.transAxes, **marks)
    after.plot([0], [0], transform=after.transAxes, **marks)
    after.text(0, 1.01, f"+{duration_text(seconds)} with no step running",
               transform=after.transAxes, fontsize=7, color="#555555", va="bottom")


def duration_text(seconds: float) -> str:
    """``7 h 2 min``, ``45 min``, ``50 s``."""
    if seconds < 60:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"
