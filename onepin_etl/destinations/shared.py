"""What the two shared destinations (a DuckLake, PostgreSQL) have in common: a configuration
resolved the dlt way, and a location named without secrets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from onepin_etl.destinations import config, probe
from onepin_etl.destinations.base import Kind

if TYPE_CHECKING:
    from onepin_etl.destinations import Target


class SharedKind(Kind):
    """A database several loaders (shards) write at once."""

    concurrent_shards = True
    config_help = "its credentials"

    def factory(self, target: Target) -> Any:
        return config.factory(self.name, staging_layout=target.staging_layout,
                              **self.factory_params())

    def factory_params(self) -> dict[str, Any]:
        return {}

    def configuration(self, target: Target) -> Any:
        """The resolved configuration, or one line naming what is missing."""
        return config.configuration(config.factory(self.name, **self.factory_params()),
                                    target.dataset, self.config_help)

    def check(self, target: Target) -> None:
        self.configuration(target)

    def identity(self, target: Target) -> str:
        return target.location

    def probe(self, target: Target, *, busy: bool = False) -> probe.Probe:
        return probe.dlt_client(self.factory(target), self.configuration(target),
                                target.location, target.dataset)


def server(credentials: Any) -> str:
    """``postgres://host:port/database``: no user, no password."""
    port = f":{credentials.port}" if credentials.port else ""
    return f"postgres://{host(credentials)}{port}/{credentials.database}"


def host(credentials: Any) -> str:
    """A host name, or a socket folder (URL-encoded in the connection string, or ?host=)."""
    name = credentials.host or (credentials.query or {}).get("host") or "localhost"
    return unquote(str(name))
