"""The source's exceptions: each one's message is one line saying what is wrong and what to do.

The application maps them to exit codes (``onepin_etl.errors``); a library user catches them.
"""

from __future__ import annotations


class OnepinError(Exception):
    """Base class: a user-facing, one-line message."""


class ConfigError(OnepinError):
    """Bad configuration or usage: what is wrong and what to do."""


class OnepinApiError(OnepinError):
    """The API answered with an error, or could not be reached, after retries."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.request_id, self.endpoint = status, code, request_id, endpoint


class OnepinAuthError(OnepinApiError):
    """401/403: the key is wrong, revoked, lacks a scope, or the workspace does not match."""


class OnepinNotFoundError(OnepinApiError):
    """404: an id that does not exist or is not visible to the key's workspace."""
