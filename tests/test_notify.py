"""``onepin-etl check --notify``: one message per change to a real HTTP receiver on loopback,
retries, a bounded wait, and the URL never shown. The data is test_health's, whose verdicts
are known: healthy without regressions, two regressions with them, plus a stale one with
``--max-age 30m``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from onepin_etl.cli import main
from onepin_etl.notify import Verdict, event
from tests.helpers import ROOT
from tests.test_health import make_db

SECRET = "T0SECRET/B0SECRET/xYzSecretToken"
HEALTHY = ("--no-regressions",)
FAILING: tuple[str, ...] = ()
MORE_FAILING = ("--max-age", "30m")


class Receiver:
    """A webhook: records each POST body, answers with the next of ``statuses`` (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{SECRET}"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def silent_receiver() -> Iterator[str]:
    """A port that takes connections and never answers (nobody accepts them)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks/{SECRET}"


@pytest.fixture
def db(workdir: Path) -> Path:
    path = workdir / "health.duckdb"
    make_db(path)
    return path


def check(db: Path, workdir: Path, *args: str, expect: int, **env: str) -> Result:
    result = CliRunner().invoke(main, [
        "check", "--duckdb-path", str(db), "--as-of", "2026-03-01T00:00:00Z",
        "--pipelines-dir", str(workdir / "pipelines"), *args], env=env)
    assert result.exit_code == expect, result.output
    assert "SECRET" not in result.output
    return result


def test_one_message_per_change_and_none_without(db: Path, workdir: Path) -> None:
    with Receiver([]) as hook:
        notify = ("--notify", hook.url)
        assert "notified" not in check(db, workdir, *HEALTHY, *notify, expect=0).output
        assert "notified: failing" in check(db, workdir, *FAILING, *notify, expect=6).output
        check(db, workdir, *FAILING, *notify, expect=6)  # nothing changed
        check(db, workdir, *MORE_FAILING, *notify, expect=6)  # a new failure
        check(db, workdir, *MORE_FAILING, *notify, expect=6)
        check(db, workdir, *HEALTHY, *notify, expect=0)  # recovered
        check(db, workdir, *HEALTHY, *notify, expect=0)
    events = [body["onepin"]["event"] for body in hook.bodies]
    assert events == ["failing", "new_failures", "recovered"]
    failing, new, recovered = hook.bodies
    where = f"{db} (dataset onepin)"
    lines = failing["text"].splitlines()
    assert lines[0] == f"onepin-etl check on {where}: 2 check(s) failing"
    assert lines[1].startswith("• regression: Podcast dubbing / N-FAIL: failure_rate 0.25 ")
    assert lines[2].startswith("• regression: Podcast dubbing / N-SLOW: p95_seconds ")
    assert [f["node"] for f in failing["onepin"]["failures"]] == ["N-FAIL", "N-SLOW"]
    assert failing["onepin"]["healthy"] is False and failing["onepin"]["where"] == where
    assert new["text"].splitlines()[0] == (f"onepin-etl check on {where}: 1 new failure(s), "
                                           "3 failing in all")
    assert [line.split(":")[0] for line in new["onepin"]["new"]] == ["freshness"]
    assert recovered["text"].splitlines()[0] == (f"onepin-etl check on {where}: healthy again, "
                                                 "3 failure(s) resolved")
    assert recovered["onepin"]["failures"] == [] and len(recovered["onepin"]["resolved"]) == 3
    state = (workdir / "pipelines" / ".onepin.check.json").read_text()
    assert "SECRET" not in state and json.loads(state) == {"healthy": True, "failures": {}}


def test_a_receiver_that_fails_once_gets_the_message_once(db: Path, workdir: Path) -> None:
    with Receiver([500]) as hook:
        check(db, workdir, *FAILING, expect=6, ONEPIN_NOTIFY_URL=hook.url)
        check(db, workdir, *FAILING, expect=6, ONEPIN_NOTIFY_URL=hook.url)
    first, second = hook.bodies  # the 500, then the 200; nothing on the second check
    assert first == second and first["onepin"]["event"] == "failing"


def test_a_receiver_that_never_answers_does_not_hold_the_check(db: Path, workdir: Path) -> None:
    with silent_receiver() as url:
        result = check(db, workdir, *FAILING, "--notify-timeout", "0.6", expect=6,
                       NOTIFY__URL=url)  # dlt's secrets: [notify] url
    assert "could not notify: ReadTimeout after 3 attempts; the next check tries again" \
        in result.output
    assert not (workdir / "pipelines" / ".onepin.check.json").exists()  # so it is sent again
    with Receiver([]) as hook:
        check(db, workdir, *FAILING, "--notify", hook.url, expect=6)
    assert [body["onepin"]["event"] for body in hook.bodies] == ["failing"]


def test_a_notify_url_that_is_not_http_is_a_usage_error(db: Path, workdir: Path) -> None:
    result = check(db, workdir, "--notify", f"hooks.example.com/{SECRET}", expect=2)
    assert result.output.strip() == (
        "error: the notify URL (--notify, ONEPIN_NOTIFY_URL or [notify] url) is not an http(s) "
        "URL; paste the webhook URL your chat tool gave you")


def test_debug_logs_do_not_show_the_url(db: Path, workdir: Path) -> None:
    """``--debug`` turns on urllib3's request log, which names each request's path."""
    with Receiver([500]) as hook:
        result = subprocess.run(
            [sys.executable, "-m", "onepin_etl.cli", "--debug", "check", "--duckdb-path",
             str(db), "--as-of", "2026-03-01T00:00:00Z", "--pipelines-dir",
             str(workdir / "pipelines"), "--notify", hook.url],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120)
    assert result.returncode == 6, result.stderr
    assert "notified: failing" in result.stderr and "Traceback" in result.stderr  # --debug on
    assert "SECRET" not in result.stdout + result.stderr
    assert len(hook.bodies) == 2


def test_which_changes_send() -> None:
    healthy, one, two = Verdict(True, {}), Verdict(False, {"a": "A"}), \
        Verdict(False, {"a": "A", "b": "B"})
    assert [event(None, healthy), event(None, one), event(healthy, one), event(one, one),
            event(one, two), event(two, one), event(two, healthy), event(healthy, healthy)] == \
        [None, "failing", "failing", None, "new_failures", None, "recovered", None]
    assert event(one, one, always=True) == "still_failing"
    assert event(healthy, healthy, always=True) is None
