"""Resolving and validating configuration: credentials, base URL, workflow and run ids.

Precedence for the key and base URL, highest first: explicit argument (dlt secrets/config,
``SOURCES__ONEPIN__API_KEY``) > ``ONEPIN_API_KEY`` / ``ONEPIN_BASE_URL`` > the official Onepin
CLI's ``~/.onepin/credentials`` (TOML ``[default] api_key, base_url``) > the production URL.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import tomllib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from onepin_source.errors import ConfigError
from onepin_source.settings import CREDENTIALS_FILE, DEFAULT_BASE_URL
from onepin_source.shaping import parse_ts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    api_key: str
    base_url: str
    workspace_id: str | None

    def __repr__(self) -> str:  # never show the key, even in a traceback
        return f"Credentials(api_key='***', base_url={self.base_url!r})"


def read_credentials_file(path: str | Path = CREDENTIALS_FILE) -> dict[str, Any]:
    """The ``[default]`` table of the Onepin CLI's credentials file, or {} if there is none."""
    file = Path(path).expanduser()
    if not file.is_file():
        return {}
    if file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by group or others; run: chmod 600 %s", file, file)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"credentials file {file} is not valid TOML ({exc}); fix or remove "
                          "it, or set ONEPIN_API_KEY") from None
    section = data.get("default", {})
    return section if isinstance(section, dict) else {}


def resolve_credentials(api_key: str | None, base_url: str | None, workspace_id: str | None,
                        *, environ: Mapping[str, str] | None = None,
                        credentials_file: str | Path = CREDENTIALS_FILE) -> Credentials:
    """Apply the precedence rules and validate the result."""
    env = os.environ if environ is None else environ
    api_key = (api_key or "").strip() or (env.get("ONEPIN_API_KEY") or "").strip()
    file: dict[str, Any] = {}
    if not api_key or not (base_url or env.get("ONEPIN_BASE_URL")):
        file = read_credentials_file(credentials_file)
    key = api_key or str(file.get("api_key") or "").strip()
    if not key:
        raise ConfigError("no Onepin API key: set ONEPIN_API_KEY or SOURCES__ONEPIN__API_KEY, "
                          "add api_key to .dlt/secrets.toml [sources.onepin], or run "
                          "'onepin login' to create ~/.onepin/credentials")
    url = base_url or env.get("ONEPIN_BASE_URL") or file.get("base_url") or DEFAULT_BASE_URL
    workspace = workspace_id or env.get("ONEPIN_WORKSPACE_ID") or None
    return Credentials(str(key).strip(), validate_base_url(str(url)), workspace)


def validate_base_url(url: str) -> str:
    """Return the URL without a trailing slash; refuse what would leak the key."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {url!r} is not an http(s) URL; use e.g. {DEFAULT_BASE_URL}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(f"base URL {url!r} uses plain http to a remote host, which would send "
                          "the API key in clear text; use https://")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_uuid(value: str, what: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a UUID; copy it from the Onepin dashboard "
                          "URL or 'onepin workflows list'") from None
    return value.lower()


def parse_run_refs(refs: Iterable[str]) -> list[tuple[str, str]]:
    """``WORKFLOW_ID/RUN_ID`` strings to validated pairs."""
    pairs = []
    for ref in refs:
        workflow_id, sep, run_id = ref.partition("/")
        if not sep:
            raise ConfigError(f"run {ref!r} must be given as WORKFLOW_ID/RUN_ID")
        pairs.append((validate_uuid(workflow_id, "workflow id"), validate_uuid(run_id, "run id")))
    return pairs


def parse_since(value: str | None, name: str = "since") -> datetime | None:
    """A ``since`` bound (or another time the caller ``name``s): an ISO-8601 datetime with a UTC
    offset (naive times are ambiguous)."""
    if not value:
        return None
    parsed = parse_ts(value)
    if parsed is None:
        raise ConfigError(f"{name} {value!r} is not an ISO-8601 datetime with a UTC offset; "
                          "use e.g. 2026-01-31T00:00:00Z")
    return parsed
