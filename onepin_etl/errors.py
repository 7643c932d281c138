"""The application's exceptions and the exit codes of the command line contract.

0 ok, 2 usage or configuration, 3 authentication/authorization, 4 API or network failure after
retries, 5 destination failure, 6 a health check failed, 7 another load of the pipeline is
running (README "Exit codes").
"""

from __future__ import annotations

from onepin_source.errors import (
    ConfigError,
    OnepinApiError,
    OnepinAuthError,
    OnepinError,
    OnepinNotFoundError,
)


class NoDataError(ConfigError):
    """Nothing loaded yet where the reader looked."""


class DestinationError(OnepinError):
    """The destination could not be written (locked DuckDB file, unwritable folder)."""


class CheckFailedError(OnepinError):
    """``onepin-etl check`` found data that breaks a threshold (the findings are printed)."""


class LoadLockedError(OnepinError):
    """Another load of the same pipeline (or into the same destination) is running."""


# Most specific first: a 404 is an OnepinApiError too, but it means a wrong id (usage).
EXIT_CODES: tuple[tuple[type[OnepinError], int], ...] = (
    (OnepinAuthError, 3),
    (OnepinNotFoundError, 2),
    (OnepinApiError, 4),
    (ConfigError, 2),
    (DestinationError, 5),
    (CheckFailedError, 6),
    (LoadLockedError, 7),
)


def exit_code(exc: OnepinError) -> int:
    """The CLI's exit code for ``exc`` (1 for an error the contract does not name)."""
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)
