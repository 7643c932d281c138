"""Run ``onepin-etl`` and SIGKILL the process at a chosen point inside dlt (a test helper).

``python -m tests.crash_runner PHASE load [ARGS...]`` where PHASE is

- ``normalize``: right after dlt has written the normalized files, before the package moves on;
- ``load``: right after the destination ran its first job of the package, the rest pending;
- ``commit``: when every job ran but the package is not yet marked complete;
- ``none``: no kill (the test kills from outside, e.g. during extract).

Only dlt's steps are wrapped, to pull the plug at a known point; our code runs unchanged.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from onepin_etl.cli import main


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _die_after(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        method(self, *args, **kwargs)
        _die()

    return wrapper


def arm(phase: str) -> None:
    from dlt.load.load import Load
    from dlt.normalize.normalize import Normalize

    if phase == "normalize":
        Normalize.spool_files = _die_after(Normalize.spool_files)  # type: ignore[method-assign]
    elif phase == "load":
        Load.w_run_job = _die_after(Load.w_run_job)  # type: ignore[method-assign]
    elif phase == "commit":
        Load.complete_package = lambda self, *args, **kwargs: _die()  # type: ignore[method-assign]
    elif phase != "none":
        raise SystemExit(f"unknown phase {phase!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    main(sys.argv[2:])
