"""The contract's error body, the exception that carries it, and the FastAPI handlers for it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.logs import request_id_var
from serve.responses import OrjsonResponse

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "not_ready",
}
MAX_FIELD_ERRORS = 50  # field errors listed in one 4xx; the message counts all


class ApiError(Exception):
    """An error the API answers on purpose, in the contract's shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = list(fields)
        self.headers = dict(headers or {})


def error_body(
    status: int, code: str, message: str, fields: Iterable[Mapping[str, str]] = ()
) -> dict[str, Any]:
    """`{"error": {...}, "request_id": ...}` as every 4xx/5xx answers."""
    return {
        "error": {"status": status, "code": code, "message": message, "fields": list(fields)},
        "request_id": request_id_var.get(),
    }


def error_response(exc: ApiError) -> OrjsonResponse:
    body = error_body(exc.status, exc.code, exc.message, exc.fields)
    return OrjsonResponse(body, status_code=exc.status, headers=exc.headers)


def field_path(loc: Sequence[Any]) -> str:
    """`("body", "instances", 0, "median_income")` → `instances[0].median_income`."""
    parts = list(loc)
    if parts and parts[0] == "body" and len(parts) > 1:
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _reason(err: Mapping[str, Any]) -> str:
    """A reason that never echoes the input (it may be NaN, which JSON cannot carry)."""
    kind = err.get("type", "")
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field; expected only the nine input fields"
    if kind == "finite_number":
        return "must be a finite number (NaN and Infinity are not allowed)"
    if kind in {"float_type", "float_parsing"}:
        if "input" in err and err["input"] is None:
            return "must not be null"
        return "must be a number (not a string or boolean)"
    if kind == "string_type":
        return "must be a string"
    if kind == "too_short" and err.get("loc", ())[-1:] == ("instances",):
        return "must contain at least 1 instance"
    if kind in {"model_attributes_type", "model_type", "dict_type"}:
        return "must be a JSON object"
    if kind == "list_type":
        return "must be a JSON array"
    return str(err.get("msg", "invalid value"))


def validation_api_error(
    errors: Sequence[Mapping[str, Any]], *, total: int | None = None, note: str = ""
) -> ApiError:
    """Turn pydantic/FastAPI errors into a 400 (unparseable JSON) or a 422 naming each field.

    Only the first MAX_FIELD_ERRORS are formatted; the message gives the total (``total``
    when the caller counted more errors than it passes), and ``note`` is appended to it.
    """
    for err in errors[:1]:
        if err.get("type") == "json_invalid":
            return malformed_json(err)
    total = len(errors) if total is None else total
    shown = [
        {"field": field_path(e.get("loc", ())), "reason": _reason(e)}
        for e in errors[:MAX_FIELD_ERRORS]
    ]
    return ApiError(422, "validation_error", invalid_summary(shown, total) + note, shown)


def invalid_summary(shown: Sequence[Mapping[str, str]], total: int) -> str:
    """`N invalid field(s): a, b, c, …` (the first three), plus how many are not listed."""
    summary = f"{total} invalid field(s): " + ", ".join(f["field"] for f in shown[:3])
    if total > 3:
        summary += ", …"
    if total > len(shown):
        summary += f" (the first {len(shown)} are listed)"
    return summary


def malformed_json(err: Mapping[str, Any]) -> ApiError:
    """400 for a body that is not JSON, with the parser's reason (and position if known)."""
    ctx = err.get("ctx") or {}
    loc = err.get("loc", ())
    pos = loc[-1] if loc and isinstance(loc[-1], int) else None
    where = f" at character {pos}" if pos is not None else ""
    reason = f"invalid JSON{where}: {ctx.get('error', 'decode error')}"
    return ApiError(
        400,
        "malformed_json",
        "the request body is not valid JSON",
        [{"field": "body", "reason": reason}],
    )


_BAD_INPUT = frozenset({400, 413, 415, 422})  # refusals of what a client sent
_INSTANCE_PREFIX = re.compile(r"^instances\[[0-9]+\]\.")


def refused_fields(exc: ApiError) -> list[str]:
    """The fields a refusal names, per field (``instances[3].median_income`` -> the field)."""
    names = [_INSTANCE_PREFIX.sub("", f.get("field", "")) for f in exc.fields]
    return [n for n in names if n] or ["body"]


async def _api_error_handler(request: Request, exc: ApiError) -> OrjsonResponse:
    if exc.status in _BAD_INPUT:
        state = getattr(request.app.state, "serve", None)
        if state is not None:
            state.metrics.count_refusal(refused_fields(exc))
    return error_response(exc)


async def _validation_handler(_: Request, exc: RequestValidationError) -> OrjsonResponse:
    return error_response(validation_api_error(exc.errors()))


async def _http_handler(_: Request, exc: StarletteHTTPException) -> OrjsonResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = dict(exc.headers or {})
    return error_response(ApiError(exc.status_code, code, message, headers=headers))


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app raises answers in the contract's shape."""
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
