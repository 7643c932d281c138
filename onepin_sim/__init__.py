"""A faithful simulator of Onepin's read API, served over real HTTP on loopback."""

from onepin_sim.faults import FaultConfig
from onepin_sim.server import Simulator
from onepin_sim.world import World, WorldConfig

__all__ = ["FaultConfig", "Simulator", "World", "WorldConfig"]
