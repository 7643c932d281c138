"""HTTP access to the Onepin API through dlt's REST client: auth, paging, retries, errors."""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator
from requests import Request, RequestException, Response
from requests.utils import get_environ_proxies

from onepin_source.config import Credentials
from onepin_source.dlt_internals import compile_path
from onepin_source.errors import OnepinApiError, OnepinAuthError, OnepinNotFoundError
from onepin_source.readahead import ReadAhead, request_key
from onepin_source.settings import (
    API_PREFIX,
    DEFAULT_CONCURRENCY,
    MAX_RETRY_DELAY_S,
    PAGE_SIZE,
    REQUEST_BACKOFF_FACTOR,
    REQUEST_MAX_ATTEMPTS,
    REQUEST_TIMEOUT_S,
)
from onepin_source.throttle import LimitedAdapter, RequestLimiter, given_up_when

log = logging.getLogger(__name__)
USER_AGENT = "onepin-dlt/0.1"
# What the official SDK retries (minus 409, which on reads means "not ready", not "try again").
RETRY_STATUSES = (408, 429, *range(500, 600))
# Compiled once: a paginator given the path as text compiles it with a new jsonpath parser each
# time, which cost ~5% of a first load's CPU (one paginator per workflow).
_TOTAL_PATH = compile_path("pagination.total")
_NOT_DECODED = object()


def body(response: Response) -> Any:
    """The JSON body, decoded once per response and kept on it (the retry check, the envelope
    and the paging all read it). orjson, a dlt dependency, decodes a steps page several times
    faster than ``response.json()``; what it refuses (NaN, integers over 64 bits) goes to the
    standard library, which raises ValueError if the body is not JSON at all."""
    decoded = response.__dict__.get("_onepin_body", _NOT_DECODED)
    if decoded is _NOT_DECODED:
        try:
            decoded = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            decoded = json.loads(response.content)
        response.__dict__["_onepin_body"] = decoded
    return decoded


def _total(response: Response) -> int | None:
    """``pagination.total`` of a list response, if it has a whole number there."""
    pagination = body(response).get("pagination")
    total = pagination.get("total") if isinstance(pagination, dict) else None
    return total if isinstance(total, int) else None


def _is_malformed_json(response: Response | None, exc: BaseException | None) -> bool:
    """Retry a 200 whose JSON body is cut short (a proxy hiccup), like a 5xx."""
    if response is None or response.status_code != 200:
        return False
    try:
        body(response)
    except ValueError:
        return True
    return False


class OnepinClient:
    """A thin, typed face over :class:`RESTClient` for the read endpoints this source uses."""

    def __init__(self, credentials: Credentials, *, concurrency: int = DEFAULT_CONCURRENCY,
                 max_attempts: int = REQUEST_MAX_ATTEMPTS,
                 max_requests_per_minute: int | None = None,
                 limiter: RequestLimiter | None = None,
                 read_ahead: bool = False) -> None:
        """One pooled, retrying session shared by every thread, with at most ``concurrency``
        requests in flight, paced to the API's quota and ``max_requests_per_minute`` (see
        :mod:`onepin_source.throttle`); ``limiter`` replaces that gate (``onepin-etl doctor``
        sends without pacing). With ``read_ahead``, answers that :meth:`reading_ahead`'s client
        fetched ahead are taken instead of sent again (HTTP errors are not kept)."""
        headers = {"User-Agent": USER_AGENT}
        if credentials.workspace_id:
            headers["X-Workspace-Id"] = credentials.workspace_id
        session = Client(
            request_timeout=REQUEST_TIMEOUT_S,
            raise_for_status=False,
            request_max_attempts=max_attempts,
            request_backoff_factor=REQUEST_BACKOFF_FACTOR,
            request_max_retry_delay=MAX_RETRY_DELAY_S,
            status_codes=RETRY_STATUSES,
            retry_condition=_is_malformed_json,
        ).session
        # Our adapter replaces the Client's own: it owns the connection pool and the limiter.
        self.limiter = limiter or RequestLimiter(
            concurrency, max_requests_per_minute=max_requests_per_minute)
        adapter = LimitedAdapter(self.limiter, pool_maxsize=concurrency + 2)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # The environment's proxies and CA bundle are read once, here: with trust_env on,
        # requests reads them (os.environ, ~/.netrc) again for every request, ~8% of a load's
        # Python time. The key is sent as a bearer header, so ~/.netrc never applied.
        session.proxies.update(get_environ_proxies(credentials.base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        session.trust_env = False
        self.base_url = credentials.base_url
        self.concurrency = concurrency
        self.read_ahead = ReadAhead(keep=lambda response: response.status_code < 400,
                                    wake=self.limiter.wake) if read_ahead else None
        # Set on the client that reads ahead: its read-ahead's generation (ReadAhead.open).
        self._ahead_generation: threading.Event | None = None
        self._rest = RESTClient(base_url=credentials.base_url + API_PREFIX, headers=headers,
                                auth=BearerTokenAuth(credentials.api_key), session=session,
                                data_selector="data")

    # ---- primitives --------------------------------------------------------------------------
    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` and return the envelope's ``data``."""
        return self._data(self._send(path, params), path)

    def envelope(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET ``path`` and return the whole body: ``data``, ``meta`` and any ``pagination``."""
        response = self._send(path, params)
        self._data(response, path)  # the same errors as get()
        return dict(body(response))

    def on_response(self, hook: Callable[[Response], None]) -> None:
        """Call ``hook`` with every HTTP answer, retries included (``onepin-etl doctor`` reads
        the rate-limit headers this way)."""
        self._rest.session.hooks["response"].append(lambda response, *_, **__: hook(response))

    def reading_ahead(self) -> OnepinClient:
        """A client on the same session and limiter whose answers are kept in this one's
        read-ahead, for it to take (:mod:`onepin_source.readahead`); it begins a new
        read-ahead (what the last one left is dropped, its requests refused)."""
        if self.read_ahead is None:
            raise ValueError("this client was made without read_ahead")
        twin = copy.copy(self)
        twin._ahead_generation = self.read_ahead.open()
        return twin

    def _send(self, path: str, params: dict[str, Any] | None) -> Response:
        ahead = self.read_ahead
        if ahead is None or self._ahead_generation is None and ahead.idle:
            return self._send_now(path, params)  # no key, no lock: most requests
        key = request_key(path, params)
        if self._ahead_generation is not None:
            answer: Response = ahead.fetch(key, lambda: self._send_ahead(path, params),
                                           self._ahead_generation)
            return answer
        taken: Response | None = ahead.take(key)
        return taken if taken is not None else self._send_now(path, params)

    def _send_ahead(self, path: str, params: dict[str, Any] | None) -> Response:
        """Send for the read-ahead: given up, unsent, once it is dropped while waiting for its
        turn (a quota's window may be a minute away)."""
        assert self._ahead_generation is not None
        with given_up_when(self._ahead_generation):
            return self._send_now(path, params)

    def _send_now(self, path: str, params: dict[str, Any] | None) -> Response:
        try:
            return self._rest.get(path, params=params)
        except RequestException as exc:
            raise _unreachable(self.base_url, path, exc) from None

    def paginate(self, path: str, params: dict[str, Any] | None = None, *,
                 prefetch: bool = False) -> Iterator[list[Any]]:
        """Offset/limit paging with ``limit=100`` until ``pagination.total`` or an empty page.

        dlt's OffsetPaginator does the paging arithmetic; each page goes through :meth:`_page`,
        so every page is retried like any other request (a response hook that raises would
        bypass the session's retries). With ``prefetch``, once the first page has told the
        total, the other pages are requested at once (through the request limiter) and yielded
        in order: a list of N pages costs two round trips, not N.
        """
        paginator = OffsetPaginator(limit=PAGE_SIZE, total_path=_TOTAL_PATH,
                                    stop_after_empty_page=True)
        request = Request("GET", path, params=dict(params or {}))
        paginator.init_request(request)
        first = dict(request.params)
        while True:
            data, response = self._page(path, dict(request.params))
            paginator.update_state(response, data)
            yield data
            if not paginator.has_next_page:
                return
            total = _total(response) if prefetch else None
            if total is not None:
                yield from self._other_pages(path, first, total)
                return
            paginator.update_request(request)

    def _page(self, path: str, params: dict[str, Any]) -> tuple[list[Any], Response]:
        response = self._send(path, params)
        data = self._data(response, path)
        if not isinstance(data, list):
            raise OnepinApiError(f"unexpected response from {path}: 'data' is not a list "
                                 f"(request id {_request_id(body(response))})", endpoint=path)
        return data, response

    def _other_pages(self, path: str, first: dict[str, Any], total: int
                     ) -> Iterator[list[Any]]:
        """The pages after the first of a listing of ``total`` items, fetched at once."""
        offsets = range(int(first.get("offset", 0)) + PAGE_SIZE, total, PAGE_SIZE)
        if not offsets:
            return
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(offsets)),
                                thread_name_prefix="onepin-pages") as pool:
            for data in pool.map(lambda offset: self._page(path, {**first, "offset": offset})[0],
                                 offsets):
                if not data:  # the listing shrank meanwhile
                    return
                yield data

    def _data(self, response: Response, path: str) -> Any:
        if response.status_code >= 400:
            raise _api_error(response, path)
        decoded = _json_body(response, path)
        if not isinstance(decoded, dict) or "data" not in decoded:
            raise OnepinApiError(f"unexpected response from {path}: no 'data' envelope "
                                 f"(request id {_request_id(decoded)})", endpoint=path)
        return decoded["data"]

    # ---- endpoints ---------------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return dict(self.get("/auth/whoami"))

    def workflows(self) -> Iterator[list[dict[str, Any]]]:
        """Every page of the workflow list, the pages after the first fetched at once."""
        return self.paginate("/workflows", {"sort": "name", "order": "asc"}, prefetch=True)

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        return dict(self.get(f"/workflows/{workflow_id}"))

    def runs_newest_first(self, workflow_id: str) -> Iterator[list[dict[str, Any]]]:
        return self.paginate(f"/workflows/{workflow_id}/runs",
                             {"sort": "created_at", "order": "desc"})

    def runs_with_status(self, workflow_id: str, statuses: Sequence[str]
                         ) -> Iterator[list[dict[str, Any]]]:
        """Runs in any of ``statuses`` (the API OR-matches a comma-separated list)."""
        return self.paginate(f"/workflows/{workflow_id}/runs",
                             {"status": ",".join(statuses), "sort": "created_at",
                              "order": "desc"})

    def run(self, workflow_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/workflows/{workflow_id}/runs/{run_id}"))

    def run_steps(self, workflow_id: str, run_id: str, *,
                  include_result: bool) -> list[dict[str, Any]]:
        params = {"include_result": "true" if include_result else "false"}
        data = self.get(f"/workflows/{workflow_id}/runs/{run_id}/steps", params)
        if not isinstance(data, list):
            raise OnepinApiError(f"unexpected steps response for run {run_id}: 'data' is not a "
                                 "list", endpoint="steps")
        return data

    def runs_summary(self, workflow_id: str) -> dict[str, Any]:
        return dict(self.get(f"/workflows/{workflow_id}/runs/summary"))


def _unreachable(base_url: str, path: str, exc: Exception) -> OnepinApiError:
    return OnepinApiError(f"cannot reach the Onepin API at {base_url} ({path}): "
                          f"{type(exc).__name__} after retries; check the base URL and network, "
                          "then run the load again", endpoint=path)


def _json_body(response: Response, path: str) -> Any:
    try:
        return body(response)
    except ValueError:
        raise OnepinApiError(f"malformed JSON from {path} (HTTP {response.status_code}) after "
                             "retries; try again later", status=response.status_code,
                             endpoint=path) from None


def _request_id(body: Any) -> str:
    meta = body.get("meta") if isinstance(body, dict) else None
    return str(meta.get("request_id")) if isinstance(meta, dict) else "unknown"


def _api_error(response: Response, path: str) -> OnepinApiError:
    """Turn an error answer (either documented body shape, or HTML) into a clear exception."""
    try:
        decoded = body(response)
    except ValueError:
        decoded = None
    code, message = _error_fields(decoded)
    status = response.status_code
    label = f"{status} {code}" if code else str(status)
    text = f"Onepin API {label} on {path}: {message or response.reason}"
    text += f" (request id {_request_id(decoded)})"
    kwargs: dict[str, Any] = {"status": status, "code": code, "endpoint": path,
                              "request_id": _request_id(decoded)}
    if status in (401, 403):
        hint = ("check the API key (ONEPIN_API_KEY / SOURCES__ONEPIN__API_KEY)" if status == 401
                else "check the key's scopes (workflows:read) and ONEPIN_WORKSPACE_ID")
        return OnepinAuthError(f"{text}; {hint}", **kwargs)
    if status == 404:
        return OnepinNotFoundError(f"{text}; check the id and that the key's workspace can see it",
                                   **kwargs)
    return OnepinApiError(text, **kwargs)


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """``{error: {code, message, details}}``, flat ``{code, message}`` or FastAPI ``{detail}``."""
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        details = error.get("details") or []
        extra = "; ".join(f"{d.get('field')}: {d.get('message')}" for d in details
                          if isinstance(d, dict))
        message = str(error.get("message") or "")
        return error.get("code"), f"{message} ({extra})" if extra and extra not in message \
            else message
    detail = body.get("detail")
    if isinstance(detail, list):
        parts = [f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail
                 if isinstance(d, dict)]
        return "VALIDATION_ERROR", "; ".join(parts)
    if body.get("message") or isinstance(detail, str):
        return body.get("code"), str(body.get("message") or detail)
    return None, None
