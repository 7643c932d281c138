"""Exceptions that carry the CLI exit code of the command line contract (design.md)."""

from __future__ import annotations


class OnepinError(Exception):
    """Base class: a user-facing, one-line message and an exit code."""

    exit_code = 1


class ConfigError(OnepinError):
    """Bad configuration or usage: what is wrong and what to do."""

    exit_code = 2


class OnepinApiError(OnepinError):
    """The API answered with an error, or could not be reached, after retries."""

    exit_code = 4

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.request_id, self.endpoint = status, code, request_id, endpoint


class OnepinAuthError(OnepinApiError):
    """401/403: the key is wrong, revoked, lacks a scope, or the workspace does not match."""

    exit_code = 3


class OnepinNotFoundError(OnepinApiError):
    """404: an id that does not exist or is not visible to the key's workspace."""

    exit_code = 2


class DestinationError(OnepinError):
    """The destination could not be written (locked DuckDB file, unwritable folder)."""

    exit_code = 5
