"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task and a copy per request).

`ObservabilityMiddleware` (outermost): request id, access log, Prometheus metrics, and a
contract-shaped 500 for anything that escapes. `RequestGuardMiddleware` (innermost): JSON
content type and the body size limit, refused before the app reads the body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import error_body
from serve.logs import request_id_var
from serve.metrics import ServeMetrics

logger = logging.getLogger("serve.access")
error_logger = logging.getLogger("serve.errors")

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] = ()):
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class ObservabilityMiddleware:
    """Request id (echoed or new) on every response, one access-log line, metrics, safe 500s."""

    def __init__(
        self, app: ASGIApp, metrics: Callable[[], ServeMetrics], access_log: Callable[[], bool]
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID_OK.match(candidate):
                    request_id = candidate
                break
        if request_id is None:
            request_id = uuid.uuid4().hex
        token = request_id_var.set(request_id)
        rid_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
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
            code = str(status)
            metrics = self._metrics()
            metrics.requests.labels(template, method, code).inc()
            metrics.latency.labels(template, method, code).observe(elapsed)
            if self._access_log():
                logger.info(
                    "%s %s %d %.2fms",
                    method,
                    scope["path"],
                    status,
                    elapsed * 1000,
                    extra={
                        "request_id": request_id,
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )
            request_id_var.reset(token)


class RequestGuardMiddleware:
    """415 unless a body is JSON; 413 when it is over the limit, before reading it all.

    A declared Content-Length over the limit is refused at once; a chunked body is read only
    up to the limit, then refused (the connection is closed rather than drained).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: Callable[[], int]) -> None:
        self.app = app
        self._limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        content_type = content_length = None
        chunked = False
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                content_length = value
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
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
                415,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
                "Content-Type",
                f"got {content_type!r}" if content_type else "header missing",
            )
            return
        if declared is not None and declared > limit:
            await _refuse(
                send,
                413,
                "payload_too_large",
                f"the body is {declared} bytes; the limit is {limit}",
                "body",
                f"must be at most {limit} bytes",
            )
            return
        if declared is not None and not chunked:
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
                await _refuse(
                    send,
                    413,
                    "payload_too_large",
                    f"the body is over the limit of {limit} bytes",
                    "body",
                    f"must be at most {limit} bytes",
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


async def _refuse(send: Send, status: int, code: str, message: str, field: str, reason: str):
    body = error_body(status, code, message, [{"field": field, "reason": reason}])
    await send_json(send, status, body, [(b"connection", b"close")])
