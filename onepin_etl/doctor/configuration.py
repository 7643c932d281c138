"""Where the key, base URL and workspace come from, in the source's order of precedence
(:mod:`onepin_source.config`): dlt's configuration (``.dlt/secrets.toml``, ``.dlt/config.toml``,
``SOURCES__ONEPIN__*``), then ``ONEPIN_*`` variables, then the official CLI's credentials file,
then the default. The key is never shown, not even in a repr: its last 4 characters at most."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.providers.provider import ConfigProvider

from onepin_source.config import Credentials, read_credentials_file, resolve_credentials
from onepin_source.settings import CREDENTIALS_FILE, DEFAULT_BASE_URL

SECTIONS = ("sources", "onepin")


@dataclass(frozen=True)
class Found:
    """The three settings as found, before validation."""

    api_key: str | None = field(repr=False)
    base_url: str | None
    workspace_id: str | None
    sources: dict[str, str]

    def credentials(self) -> Credentials:
        """Validated as the source validates them (:class:`~onepin_source.errors.ConfigError`)."""
        return resolve_credentials(self.api_key, self.base_url, self.workspace_id)


def _from_dlt(name: str, providers: Sequence[ConfigProvider]) -> tuple[str | None, str]:
    for provider in providers:
        if provider.is_empty:
            continue
        value, field = provider.get_value(name, Any, None, *SECTIONS)
        if value is not None and str(value).strip():
            where = field if provider.name == "Environment Variables" else \
                f"{provider.name} [{'.'.join(SECTIONS)}] {name}"
            return str(value).strip(), where
    return None, ""


def find() -> Found:
    """Each setting and the place it comes from, as :func:`resolve_credentials` picks it."""
    env = os.environ
    key, key_from = _from_dlt("api_key", dlt.secrets.config_providers)
    url, url_from = _from_dlt("base_url", dlt.config.config_providers)
    workspace, workspace_from = _from_dlt("workspace_id", dlt.config.config_providers)
    file_path = Path(CREDENTIALS_FILE).expanduser()
    file: dict[str, Any] = {}
    if not (key or env.get("ONEPIN_API_KEY")) or not (url or env.get("ONEPIN_BASE_URL")):
        file = read_credentials_file(file_path)  # only when needed, as the source reads it
    if not key:
        key, key_from = _first((env.get("ONEPIN_API_KEY"), "ONEPIN_API_KEY"),
                               (file.get("api_key"), f"{file_path} [default] api_key"))
    if not url:
        url, url_from = _first((env.get("ONEPIN_BASE_URL"), "ONEPIN_BASE_URL"),
                               (file.get("base_url"), f"{file_path} [default] base_url"),
                               (DEFAULT_BASE_URL, "the default"))
    if not workspace:
        workspace, workspace_from = _first((env.get("ONEPIN_WORKSPACE_ID"),
                                            "ONEPIN_WORKSPACE_ID"))
    return Found(key, url, workspace, {"api_key": key_from or "not set",
                                       "base_url": url_from,
                                       "workspace_id": workspace_from or "not set"})


def _first(*candidates: tuple[Any, str]) -> tuple[str | None, str]:
    for value, where in candidates:
        if value is not None and str(value).strip():
            return str(value).strip(), where
    return None, ""


def last4(key: str | None) -> str | None:
    """What may be shown of a key: its last 4 characters, and only of a key long enough that
    they give nothing away."""
    return f"…{key[-4:]}" if key and len(key) >= 16 else None
