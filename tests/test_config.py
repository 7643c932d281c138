"""Configuration: key/base URL precedence, validation, and dlt's config section."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from onepin_source import onepin
from onepin_source.config import parse_run_refs, resolve_credentials, validate_base_url
from onepin_source.errors import ConfigError

KEY_A, KEY_B, KEY_C = ("op_live_" + c * 32 for c in "abc")


def write_credentials(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_precedence_argument_env_file(tmp_path: Path) -> None:
    creds = write_credentials(tmp_path / "credentials",
                              f'[default]\napi_key = "{KEY_C}"\nbase_url = "https://f.example"\n')
    env = {"ONEPIN_API_KEY": KEY_B, "ONEPIN_WORKSPACE_ID": "ws"}
    assert resolve_credentials(KEY_A, None, None, environ=env,
                               credentials_file=creds).api_key == KEY_A
    from_env = resolve_credentials(None, None, None, environ=env, credentials_file=creds)
    assert (from_env.api_key, from_env.base_url, from_env.workspace_id) == (
        KEY_B, "https://f.example", "ws")
    from_file = resolve_credentials(None, None, None, environ={}, credentials_file=creds)
    assert from_file.api_key == KEY_C
    default = resolve_credentials(KEY_A, None, None, environ={}, credentials_file=tmp_path / "no")
    assert default.base_url == "https://api.onepin.ai"


def test_missing_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Onepin API key: set ONEPIN_API_KEY"):
        resolve_credentials(None, None, None, environ={}, credentials_file=tmp_path / "none")


def test_malformed_credentials_file(tmp_path: Path) -> None:
    creds = write_credentials(tmp_path / "credentials", "[default\napi_key=")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        resolve_credentials(None, None, None, environ={}, credentials_file=creds)


def test_world_readable_credentials_file_warns(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    creds = write_credentials(tmp_path / "credentials", f'[default]\napi_key = "{KEY_C}"\n',
                              mode=0o644)
    with caplog.at_level(logging.WARNING):
        resolve_credentials(None, None, None, environ={}, credentials_file=creds)
    assert "readable by group or others; run: chmod 600" in caplog.text
    assert KEY_C not in caplog.text


@pytest.mark.parametrize(("url", "message"), [
    pytest.param("ftp://x", "is not an http(s) URL", id="scheme"),
    pytest.param("not a url", "is not an http(s) URL", id="garbage"),
    pytest.param("http://api.onepin.ai", "plain http to a remote host", id="cleartext"),
    pytest.param("http://10.0.0.5:8000", "plain http to a remote host", id="private-ip"),
])
def test_bad_base_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_base_url(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:1/",
                                 "https://api.onepin.ai/"])
def test_good_base_urls(url: str) -> None:
    assert validate_base_url(url) == url.rstrip("/")


def test_run_refs() -> None:
    wf, run = "3FA85F64-5717-4562-B3FC-2C963F66AFA6", "3fa85f64-5717-4562-b3fc-2c963f66afa7"
    assert parse_run_refs([f"{wf}/{run}"]) == [(wf.lower(), run)]
    with pytest.raises(ConfigError, match="WORKFLOW_ID/RUN_ID"):
        parse_run_refs([wf])
    with pytest.raises(ConfigError, match="run id 'x' is not a UUID"):
        parse_run_refs([f"{wf}/x"])


def test_key_resolves_from_the_sources_onepin_section(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """The config section is part of the interface: SOURCES__ONEPIN__API_KEY."""
    for name in list(os.environ):
        if name.startswith(("ONEPIN_", "SOURCES__")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SOURCES__ONEPIN__API_KEY", KEY_A)
    monkeypatch.setenv("SOURCES__ONEPIN__BASE_URL", "http://127.0.0.1:9")
    source = onepin()
    assert source.name == "onepin" and source.section == "onepin"
    assert sorted(source.resources) == ["run_steps", "runs", "workflows"]
    monkeypatch.delenv("SOURCES__ONEPIN__API_KEY")
    with pytest.raises(ConfigError, match="no Onepin API key"):
        onepin()


@pytest.mark.parametrize(("args", "message"), [
    (["check", "--as-of", "junk"], "--as-of 'junk' is not an ISO-8601 datetime with a UTC "
                                   "offset; use e.g. 2026-01-31T00:00:00Z"),
    (["report", "--since", "2026-01-01"], "--since '2026-01-01' is not an ISO-8601 datetime "
                                          "with a UTC offset; use e.g. 2026-01-31T00:00:00Z"),
    (["check", "--confidence", "0.2"], "--confidence must be at least 0.5 and below 1 (e.g. "
                                       "0.99)"),
    (["status", "--shard", "0/2"], "--shard '0/2' is not K/N with 1 <= K <= N; use e.g. 1/4"),
])
def test_a_bad_option_value_is_named_by_its_flag(cli: Any, args: list[str], message: str) -> None:
    """The library names the parameter; the command line names the flag."""
    assert cli(*args, expect=2).output == f"error: {message}\n"
