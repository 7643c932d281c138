"""Steps in shapes the API does not document (a fault knob, off by default).

``odd_steps`` is the share of steps served bent in one of the ways below; which steps, and how,
depends only on the step id, so every read of a step (the connector's, a test's) sees the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from onepin_sim.clock import iso_ms, parse_iso_ms


def _missing_fields(step: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in step.items() if k not in ("node_type", "iteration", "error")}


def _unknown_status(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "status": "queued_for_review"}


def _wrong_types(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "iteration": f"#{step.get('iteration')}", "has_result": "sometimes",
            "locales": "en-US"}


def _list_result(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "result": ["line 1", {"n": 2}, 3]}


def _string_result(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "result": "plain text result ✓"}


def _huge_result(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "result": {"transcript": ("Grüße 🎙 " * 130_000)[:1_000_000]}}


def _nul_characters(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "error": "bad\x00byte", "result": {"sample": "nul\x00inside"}}


def _with_offset(value: Any, minutes: int, suffix: str) -> Any:
    """The same instant as ``value`` (``...Z``), written in local time at another offset."""
    ms = parse_iso_ms(value) if isinstance(value, str) else None
    return value if ms is None else iso_ms(ms + minutes * 60_000)[:-1] + suffix


def _offset_timestamps(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "started_at": _with_offset(step.get("started_at"), 9 * 60, "+09:00"),
            "completed_at": _with_offset(step.get("completed_at"), -210, "-03:30")}


BENDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "missing_fields": _missing_fields, "unknown_status": _unknown_status,
    "wrong_types": _wrong_types, "list_result": _list_result, "string_result": _string_result,
    "huge_result": _huge_result, "nul_characters": _nul_characters,
    "offset_timestamps": _offset_timestamps,
}


def bend(step: dict[str, Any], share: float) -> dict[str, Any]:
    """``step``, or (for ``share`` of step ids) one of its odd variants."""
    kind = bend_kind(str(step.get("id")), share)
    return BENDS[kind](step) if kind else step


def bend_kind(step_id: str, share: float) -> str | None:
    """Which bend a step id gets at ``share`` (None: served as is)."""
    digest = hashlib.sha256(step_id.encode()).digest()
    if int.from_bytes(digest[:4], "big") / 2**32 >= share:
        return None
    return list(BENDS)[digest[4] % len(BENDS)]
