"""A faithful simulator of Onepin's read API, served over real HTTP on loopback.

The names below are imported when first used: ``onepin-etl``'s flags read
:mod:`onepin_sim.latency` without loading the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onepin_sim.faults import FaultConfig
    from onepin_sim.server import Simulator
    from onepin_sim.world import World, WorldConfig

__all__ = ["FaultConfig", "Simulator", "World", "WorldConfig"]
_HOMES = {"FaultConfig": "onepin_sim.faults", "Simulator": "onepin_sim.server",
          "World": "onepin_sim.world", "WorldConfig": "onepin_sim.world"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'onepin_sim' has no attribute {name!r}")
