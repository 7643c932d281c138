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
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

STATUS_COLORS = {"completed": "#4f81bd", "failed": "#c0504d", "cancelled": "#9e9e9e",
                 "running": "#f79646", "pending": "#d9d9d9", "paused": "#8064a2"}
OTHER_COLOR = "#4bacc6"
# Text is measured with matplotlib's own DejaVu Sans but drawn by the browser, which finds a
# font for each glyph DejaVu lacks (emoji, CJK): matplotlib's "glyph missing" warnings are moot.
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
        fig, ax = _figure(8, 3.2)
        for name, group in daily.groupby("workflow_name", sort=True):
            ax.plot(pd.to_datetime(group["day"]), group["pass_rate"] * 100, marker="o",
                    markersize=3, label=str(name))
        ax.set(title="Run pass rate per day", xlabel="day (UTC)", ylabel="pass rate (%)",
               ylim=(0, 105))
        ax.legend(title="workflow", fontsize=7, loc="lower left", ncol=2)
        fig.autofmt_xdate()
        return to_svg(fig)


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
                  loc="lower right")
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
                                 label="failed ÷ (completed + failed), label: counts")],
                  fontsize=7, loc="lower right")
        return to_svg(fig)


def run_timeline(steps: pd.DataFrame, title: str) -> str:
    """One run's step attempts as bars from start to end, coloured by status."""
    start = steps["started_at"].min()
    last = steps[["started_at", "completed_at"]].max().max()
    with plt.rc_context(_STYLE):
        fig, ax = _figure(8, 0.34 * len(steps) + 1.4)
        labels: list[str] = []
        for row in steps.to_dict("records"):
            end = row["completed_at"] if pd.notna(row["completed_at"]) else last
            left = (row["started_at"] - start).total_seconds()
            width = max((end - row["started_at"]).total_seconds(), 0.5)
            ax.barh(len(labels), width, left=left,
                    color=STATUS_COLORS.get(str(row["status"]), OTHER_COLOR))
            labels.append(f"{row['node_display_name']} (#{row['iteration']})")
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.set(title=title, xlabel="seconds since the run's first step started")
        shown = sorted(set(steps["status"].astype(str)))
        ax.legend(handles=[Patch(color=STATUS_COLORS.get(s, OTHER_COLOR), label=s)
                           for s in shown], title="step status", fontsize=7,
                  loc="lower right")
        return to_svg(fig)
