"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task and a copy per request).

`ObservabilityMiddleware` (outermost): request id, CORS (only for requests that carry an
Origin), access log, Prometheus metrics, and a contract-shaped 500 for anything that
escapes. `RequestGuardMiddleware` (innermost): JSON content type and the body size limit,
refused before the app reads the body; the 413 is delivered with a lingering close.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import error_body
from serve.logs import log_fields, request_id_var
from serve.metrics import ServeMetrics

logger = logging.getLogger("serve.access")
error_logger = logging.getLogger("serve.errors")

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class Linger:
    """The lingering close after a refusal, as nginx's ``lingering_time`` and
    ``lingering_timeout``: the rest of the body is read and discarded, however large, until
    the client has sent it all, for at most ``total_s`` in all and ``idle_s`` between two
    reads. No byte cap: closing while the client still writes resets the connection, and
    the client never reads its 413. The time bounds keep a client that trickles forever
    from holding the connection."""

    total_s: float = 30.0
    idle_s: float = 5.0


class _RequestIds:
    """Unique ids without a syscall per request: a random per-process prefix and a counter.

    32 hex characters like a uuid4 hex (16 random, 16 counter).
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


def _json_headers(payload: bytes, extra: list[tuple[bytes, bytes]] | tuple = ()) -> list:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *extra,
    ]


async def send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] = ()):
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _json_headers(payload, headers),
        }
    )
    await send({"type": "http.response.body", "body": payload})


class ObservabilityMiddleware:
    """Request id (echoed or new) on every response, CORS, one access-log line, metrics,
    safe 500s.

    ``cors`` wraps the inner app in the CORS middleware; it is applied only to requests with
    an Origin header (a browser's), so API clients do not pay for it.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Callable[[], ServeMetrics],
        access_log: Callable[[], bool],
        cors: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._access_log = access_log
        self._cors_factory = cors
        self._cors: ASGIApp | None = None
        self._new_id = _RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = None
        has_origin = False
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                if request_id is None:
                    candidate = value.decode("latin-1")
                    if _REQUEST_ID_OK.match(candidate):
                        request_id = candidate
            elif key == b"origin":
                has_origin = True
        if request_id is None:
            request_id = self._new_id()
        token = request_id_var.set(request_id)
        rid_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        app = self.app
        if has_origin and self._cors_factory is not None:
            if self._cors is None:
                self._cors = self._cors_factory(self.app)
            app = self._cors
        try:
            await app(scope, receive, send_wrapper)
        except Exception:
            error_logger.exception(
                "unhandled error on %s %s",
                scope["method"],
                scope["path"],
                extra={"request_id": request_id},
            )
            status = 500
            if not started:
                await send_json(
                    send,
                    500,
                    error_body(
                        500, "internal_error", f"internal error; quote request id {request_id}"
                    ),
                    [rid_header],
                )
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            if method not in _METHODS:
                method = "other"  # bounded label values: a client chooses the method
            self._metrics().observe_request(template, method, status, elapsed)
            if self._access_log():
                ms = round(elapsed * 1000, 3)
                path = scope["path"]
                log_fields(
                    logger,
                    f"{method} {path} {status} {ms:.2f}ms",
                    {
                        "request_id": request_id,
                        "route": template,
                        "status": status,
                        "duration_ms": ms,
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )
            request_id_var.reset(token)


class RequestGuardMiddleware:
    """415 unless a body is JSON; 413 when it is over the limit, before the app reads it.

    A declared Content-Length over the limit is refused at once; a chunked body is counted
    as it arrives and refused once past the limit. Either way the 413 is sent first, then
    the rest of the body is read and discarded (a :class:`Linger`: until the client is done,
    within time bounds) before the connection closes: a client that writes its whole body
    before reading (python http.client, requests) then reads the 413 instead of a reset.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: Callable[[], int],
        linger: Callable[[], Linger] = Linger,
    ) -> None:
        self.app = app
        self._limit = max_body_bytes
        self._linger = linger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        content_type = content_length = None
        chunked = expects_continue = False
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                content_length = value
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif key == b"expect" and value.lower() == b"100-continue":
                expects_continue = True  # the client waits: no body is coming to discard
        limit = self._limit()
        try:
            declared = int(content_length) if content_length is not None else None
        except ValueError:
            declared = None
        has_body = chunked or (declared or 0) > 0
        if not has_body:
            await self.app(scope, receive, send)
            return
        if not _is_json(content_type):
            await _refuse(
                send,
                receive,
                415,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
                "Content-Type",
                f"got {content_type!r}" if content_type else "header missing",
                self._linger() if not expects_continue else None,
            )
            return
        if declared is not None and declared > limit and not chunked:
            await _refuse_too_large(
                send,
                receive,
                f"the body is {declared} bytes; the limit is {limit}",
                limit,
                None if expects_continue else self._linger(),
            )
            return
        if not chunked:
            await self.app(scope, receive, send)  # the server enforces Content-Length
            return
        # Chunked: buffer up to the limit, then replay to the app.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                more = message.get("more_body", False)  # else all read: nothing to discard
                await _refuse_too_large(
                    send,
                    receive,
                    f"the body is over the limit of {limit} bytes",
                    limit,
                    self._linger() if more else None,
                )
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


async def _refuse_too_large(
    send: Send, receive: Receive, message: str, limit: int, linger: Linger | None
) -> None:
    """413, then the lingering close (``linger`` None: nothing more is coming)."""
    await _refuse(
        send,
        receive,
        413,
        "payload_too_large",
        message,
        "body",
        f"must be at most {limit} bytes",
        linger,
    )


async def _refuse(
    send: Send,
    receive: Receive,
    status: int,
    code: str,
    message: str,
    field: str,
    reason: str,
    linger: Linger | None,
) -> None:
    """An error answer with a lingering close: the whole answer first, then drain, then close.

    The response body goes out complete (Content-Length) but with ``more_body`` set, so the
    server keeps the request open and `receive` still yields the client's bytes, which are
    discarded until the client has sent its last one, or ``linger`` runs out (in all, or
    between two reads); the final empty body message ends the response, and
    ``connection: close`` closes the connection.
    """
    payload = orjson.dumps(error_body(status, code, message, [{"field": field, "reason": reason}]))
    headers = _json_headers(payload, [(b"connection", b"close")])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": True})
    if linger is not None:
        with anyio.move_on_after(linger.total_s):
            while True:
                with anyio.move_on_after(linger.idle_s) as idle:
                    message = await receive()
                if idle.cancelled_caught or message["type"] != "http.request":
                    break
                if not message.get("more_body", False):
                    break
    await send({"type": "http.response.body", "body": b""})
