"""Any other dlt destination (by type, or by a name configured in .dlt/): loads work as dlt
makes them; readers, status and compaction do not apply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onepin_etl.destinations import config
from onepin_etl.destinations.base import Kind, readable
from onepin_etl.dlt_internals import UnknownDestinationModule
from onepin_source.errors import ConfigError

if TYPE_CHECKING:
    from onepin_etl.destinations import Target


class OtherDestination(Kind):
    def __init__(self, name: str) -> None:
        self.name = self.dlt_type = name

    def check(self, target: Target) -> None:
        """The destination must be one dlt knows."""
        try:
            config.factory(self.name)
        except UnknownDestinationModule:
            raise ConfigError(f"unknown destination {self.name!r}: use one of "
                              f"{', '.join(readable())} (duckdb is the default), or the name "
                              "of another dlt destination") from None

    def factory(self, target: Target) -> Any:
        return config.factory(self.name, staging_layout=target.staging_layout)
