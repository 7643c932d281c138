"""One rule for times without a zone: DuckDB hands back ``timestamp`` (naive) values for dlt's
UTC columns in some readers, and dlt's own records are UTC; a naive time here means UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC, a naive one taken to be UTC already."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
