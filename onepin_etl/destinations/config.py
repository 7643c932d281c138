"""dlt's side of every destination: the process-wide dlt settings (one ``configure_dlt``), the
destination factory, and configuration resolved or refused in one line.

Configuration is dlt's: ``.dlt/secrets.toml`` or ``DESTINATION__<NAME>__CREDENTIALS__…``
variables (``.dlt/example.secrets.toml``). Nothing secret is put on a command line, and nothing
read here is printed: errors go through :func:`onepin_etl.destinations.scrub.scrub`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import dlt

from onepin_etl import duckdb_extensions
from onepin_etl.dlt_internals import ConfigFieldMissingException, Destination
from onepin_source.dlt_internals import ARROW_ROW_IDS_CONFIG
from onepin_source.errors import ConfigError

_configured = threading.Event()
# dlt's DuckDB-based destinations read this from their credentials (``global_config``).
_GLOBAL_CONFIG_KEYS = ("destination.ducklake.credentials.global_config",)


def configure_dlt() -> None:
    """dlt settings the application relies on, before a pipeline or a reader is made:

    - Arrow rows get ``_dlt_load_id`` and ``_dlt_id`` like dict rows do (once per process);
    - dlt's DuckLake destination finds the packaged DuckDB extensions
      (:mod:`onepin_etl.duckdb_extensions`), keeping any other ``global_config`` the user set
      (``DESTINATION__DUCKLAKE__CREDENTIALS__GLOBAL_CONFIG``; checked on every call, as the
      user's configuration may change between loads of one process)."""
    if not _configured.is_set():
        for key in ARROW_ROW_IDS_CONFIG:
            dlt.config[key] = True
        _configured.set()
    directory = duckdb_extensions.extension_directory()
    if directory is None:
        return
    for key in _GLOBAL_CONFIG_KEYS:
        current = _as_dict(dlt.secrets.get(key))
        if "extension_directory" not in current:
            dlt.secrets[key] = {**current, "extension_directory": directory}


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    return dict(value or {})


def factory(reference: str, *, staging_layout: str | None = None, **params: Any) -> Any:
    """dlt's destination factory for ``reference`` (a type or a name configured in .dlt/)."""
    if staging_layout:
        params["staging_dataset_name_layout"] = staging_layout
    return Destination.from_reference(reference, **params)


def configuration(destination: Any, dataset: str, config_help: str) -> Any:
    """The resolved dlt configuration of ``destination`` (a factory), or a one-line error naming
    what is missing and where to set it (``config_help``)."""
    initial = destination.spec()
    initial.dataset_name = dataset
    try:
        return destination.configuration(initial)
    except ConfigFieldMissingException as exc:
        fields = ", ".join(exc.fields)
        raise ConfigError(f"destination {destination.destination_name!r} is not configured "
                          f"(missing {fields}): set {config_help} in the environment or "
                          ".dlt/secrets.toml (see .dlt/example.secrets.toml)") from None
