"""Destination errors as one line without secrets: a driver may echo a connection string."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from onepin_etl.errors import DestinationError


def first_line(exc: BaseException) -> str:
    """``Type: the first non-empty line of the message``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
_KEY_VALUE_PASSWORD = re.compile(r"(password\s*[=:]\s*)('[^']*'|\S+)", re.IGNORECASE)


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """``text`` without passwords: in URLs (``user:…@``), ``password=…`` pairs and any of
    ``secrets`` given."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KEY_VALUE_PASSWORD.sub(r"\1***", text)
    for secret in secrets or []:
        if secret:
            text = text.replace(secret, "***")
    return text


@contextmanager
def reading(what: str, secrets: list[str] | None = None) -> Iterator[None]:
    """Turn a failure to open a destination for reading into one line without secrets."""
    try:
        yield
    except Exception as exc:
        cause = exc.__cause__ or exc  # dlt wraps driver errors in its own exceptions
        raise DestinationError(f"could not read {what}: {scrub(first_line(cause), secrets)}"
                               + _hint(cause)) from None


def _hint(exc: BaseException) -> str:
    if "automatically install" in str(exc) or "Failed to download extension" in str(exc):
        return ("; DuckDB could not download an extension (no internet?): install "
                "onepin-dlt[shared], which ships them for DuckDB 1.4.4")
    return ""
