"""The simulator's HTTP server: auth, envelopes, fault injection and the admin endpoints.

Built on the standard library's threading HTTP server (one thread per connection, HTTP/1.1
keep-alive), which keeps up with dozens of concurrent clients and, unlike an ASGI stack, can
drop a connection mid-request for the fault tests.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from onepin_sim import api, odd
from onepin_sim.clock import SimClock, iso_ms
from onepin_sim.faults import FaultConfig, FaultInjector, RequestStats
from onepin_sim.world import World, WorldConfig

log = logging.getLogger(__name__)
ADMIN_PREFIX = "/_sim/"
_BEARER = re.compile(r"^Bearer (op_live_[0-9A-Za-z]{32})$")
_5XX = (500, 502, 503, 504)


class _QuietServer(ThreadingHTTPServer):
    """A client that goes away mid-request (a killed load) is not an error of the server: no
    traceback for a reset or broken connection; any other error is printed as before."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Simulator:
    """A running (or startable) simulated Onepin API.

    Use as a context manager; ``base_url`` and ``api_key`` are what a client needs. The clock
    starts at ``config.start_ms`` and moves only through :meth:`advance` (or the admin endpoint).
    """

    def __init__(self, config: WorldConfig | None = None, faults: FaultConfig | None = None,
                 *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.world = World(config or WorldConfig())
        self.clock = SimClock(self.world.config.start_ms)
        self.faults = faults or FaultConfig()
        self.injector = FaultInjector(self.faults)
        self.stats = RequestStats()
        self._server = _QuietServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def api_key(self) -> str:
        return self.world.api_key

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def advance(self, seconds: float) -> int:
        return self.clock.advance(seconds)

    def set_faults(self, **knobs: Any) -> None:
        self.faults.update(knobs)

    def start(self) -> Simulator:
        # A short poll interval makes stop() quick: tests start and stop many simulators.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="onepin-sim")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _handler_for(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        simulator = sim

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the client's
    # delayed ACK adds ~40 ms to every keep-alive response (the real API has no such floor).
    disable_nagle_algorithm = True
    simulator: Simulator
    _quota_headers: dict[str, str] = {}  # noqa: RUF012 - replaced per request, never mutated

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    # ---- plumbing ----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**self._quota_headers, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _meta(self) -> dict[str, str]:
        return {"request_id": f"req_{uuid.uuid4().hex}",
                "timestamp": iso_ms(self.simulator.clock.now_ms)}

    def _json(self, status: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        payload["meta"] = self._meta()
        self._send(status, json.dumps(payload, ensure_ascii=False).encode(), headers=headers)

    def _error(self, err: api.ApiError, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"code": err.code, "message": err.message, "details": err.details}}
        self._json(err.status, body, headers)

    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.simulator.base_url[7:]}"

    # ---- verbs -------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        if url.path.startswith(ADMIN_PREFIX):
            self._admin("GET", url.path, parse_qs(url.query))
            return
        began = self.simulator.stats.begin()
        try:
            self._api(url.path, parse_qs(url.query, keep_blank_values=True))
        finally:
            self.simulator.stats.end(began)
        if self.simulator.faults.record_requests:
            self.simulator.stats.record(self.path)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path.startswith(ADMIN_PREFIX):
            self._admin("POST", url.path, parse_qs(url.query), body)
        else:
            self._error(api.ApiError(405, "METHOD_NOT_ALLOWED", "the simulator is read-only"))

    def _api(self, path: str, query: api.Query) -> None:
        sim = self.simulator
        self._quota_headers = {}
        matched = api.route(path)
        kind = matched[0] if matched else "unknown"
        sim.injector.latency.serve()
        key = self._authenticate()
        if isinstance(key, api.ApiError):
            sim.stats.count(kind, key.status)
            self._error(key)
            return
        quota = sim.injector.quota(key)
        self._quota_headers = quota.headers() if quota and sim.faults.rate_limit_headers else {}
        if self._inject_fault(kind, quota.reset_s if quota and quota.over else None):
            return
        if matched is None:
            sim.stats.count(kind, 404)
            self._error(api.ApiError(404, "NOT_FOUND", f"No route for {path}"))
            return
        req = api.Request(sim.world, sim.clock.now_ms, query, self._base_url(), path)
        try:
            payload = matched[1](req, *matched[2])
        except api.ApiError as err:
            sim.stats.count(kind, err.status)
            self._error(err)
            return
        if kind == "steps" and sim.faults.odd_steps:
            payload["data"] = [odd.bend(step, sim.faults.odd_steps) for step in payload["data"]]
        sim.stats.count(kind, 200)
        self._json(200, payload)

    def _authenticate(self) -> str | api.ApiError:
        world = self.simulator.world
        match = _BEARER.match(self.headers.get("Authorization") or "")
        if not match or match.group(1) != world.api_key:
            return api.ApiError(401, "INVALID_API_KEY", "Missing, malformed or unknown API key")
        workspace = self.headers.get("X-Workspace-Id")
        if workspace is not None and workspace != world.workspace_id:
            return api.ApiError(403, "FORBIDDEN",
                                "X-Workspace-Id does not match the API key's workspace")
        return match.group(1)

    def _inject_fault(self, kind: str, wait: int | None) -> bool:
        """``wait``: seconds until the key's spent quota frees a request (None: not spent)."""
        sim = self.simulator
        fault = "rate_limit" if wait else sim.injector.draw()
        if fault is None:
            return False
        if fault == "dropped":
            sim.stats.count(kind, 0, fault)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault in ("429", "rate_limit"):
            sim.stats.count(kind, 429, fault)
            retry_after = str(wait or sim.faults.retry_after_s)
            self._error(api.ApiError(429, "RATE_LIMITED", "Rate limit exceeded"),
                        {"Retry-After": retry_after})
        elif fault == "5xx":
            status = sim.injector.pick(_5XX)
            sim.stats.count(kind, status, fault)
            if sim.injector.html_body():
                html = f"<html><body><h1>{status} Server Error</h1></body></html>"
                self._send(status, html.encode(), "text/html")
            else:
                self._error(api.ApiError(status, "SERVER_ERROR", "Internal server error"))
        else:  # malformed JSON with a 200: a proxy that cut the body short
            sim.stats.count(kind, 200, fault)
            self._send(200, b'{"data": [{"id": "trunc')
        return True

    # ---- admin -------------------------------------------------------------------------------
    def _admin(self, verb: str, path: str, query: dict[str, list[str]], body: bytes = b"") -> None:
        sim = self.simulator
        self._quota_headers = {}
        name = path[len(ADMIN_PREFIX):].strip("/")
        try:
            if name == "clock" and verb == "GET":
                pass
            elif name == "clock/advance" and verb == "POST":
                sim.advance(float((query.get("seconds") or ["0"])[0]))
            elif name == "stats" and verb == "GET":  # ?window=S: the most requests in any S s
                window = float((query.get("window") or [str(sim.faults.rate_window_s)])[0])
                self._send(200, json.dumps(sim.stats.snapshot(window)).encode())
                return
            elif name == "requests" and verb == "GET":  # recorded with record_requests
                self._send(200, json.dumps(sim.stats.paths).encode())
                return
            elif name == "stats/reset" and verb == "POST":
                sim.stats.reset()
            elif name == "faults":
                if verb == "POST":
                    sim.set_faults(**json.loads(body or b"{}"))
                self._send(200, json.dumps(sim.faults.as_dict()).encode())
                return
            else:
                self._send(404, b'{"error": "unknown admin endpoint"}')
                return
        except ValueError as exc:
            self._send(400, json.dumps({"error": str(exc)}).encode())
            return
        now = sim.clock.now_ms
        self._send(200, json.dumps({"now": iso_ms(now), "now_ms": now}).encode())
