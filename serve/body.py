"""The predict body, parsed with bounded cost: the instance count before any element.

A small body (fewer bytes than ``2 x max_batch``, so it cannot hold ``max_batch`` elements)
is validated in one pydantic pass over the JSON bytes. A larger one is parsed with orjson,
its envelope checked (an object with one array `instances`), the count compared with
``max_batch``, and only then are the elements validated, in chunks, stopping once
MAX_FIELD_ERRORS errors are found: a body of 100,000 bad elements costs one parse and one
count, never 100,000 validations or millions of error objects.
"""

from __future__ import annotations

from typing import Any

import orjson
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from serve.errors import MAX_FIELD_ERRORS, ApiError, malformed_json, validation_api_error
from serve.schemas import InstanceCreate, PredictRequest

CHUNK = 100  # elements validated per pydantic call on the large-body path

_REQUEST = PredictRequest.__pydantic_validator__
_CHUNK = TypeAdapter(list[InstanceCreate])


class _Envelope(BaseModel):
    """The body's shape without its elements: same errors as PredictRequest at that level."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Any] = Field(..., min_length=1)


def parse_instances(raw: bytes, max_batch: int) -> list[InstanceCreate]:
    """The validated instances of a predict body, or an ApiError (400, 422) in the contract."""
    if not raw.strip():
        raise ApiError(422, "validation_error", "1 invalid field(s): body", [_required()])
    if len(raw) < 2 * max_batch:  # each element takes at least 2 bytes ("1,")
        try:
            return _REQUEST.validate_json(raw).instances
        except ValidationError as exc:
            raise _from_validation(exc) from None
    data = _loads(raw)
    try:
        instances = _Envelope.model_validate(data).instances
    except ValidationError as exc:
        raise _from_validation(exc) from None
    if len(instances) > max_batch:
        raise too_many(len(instances), max_batch)
    return _validate_chunks(instances)


def too_many(count: int, max_batch: int) -> ApiError:
    return ApiError(
        422,
        "validation_error",
        f"instances: {count} instances; at most MAX_BATCH={max_batch} per request",
        [
            {
                "field": "instances",
                "reason": f"at most {max_batch} instances per request (got {count}); "
                "split the batch",
            }
        ],
    )


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # orjson refuses NaN/Infinity and huge integers: those get their 422 from pydantic
        return pydantic_core.from_json(raw, allow_inf_nan=True)
    except ValueError as exc:
        raise malformed_json({"ctx": {"error": str(exc)}}) from None


def _validate_chunks(instances: list[Any]) -> list[InstanceCreate]:
    out: list[InstanceCreate] = []
    errors: list[dict[str, Any]] = []
    total = 0
    checked = 0
    for start in range(0, len(instances), CHUNK):
        chunk = instances[start : start + CHUNK]
        checked = start + len(chunk)
        try:
            validated = _CHUNK.validate_python(chunk)
        except ValidationError as exc:
            total += exc.error_count()
            for err in exc.errors(include_url=False):
                if len(errors) >= MAX_FIELD_ERRORS:
                    break
                loc = err["loc"]
                err["loc"] = ("instances", start + loc[0], *loc[1:]) if loc else ("instances",)
                errors.append(err)
            if len(errors) >= MAX_FIELD_ERRORS:
                break
            continue
        if not errors:
            out.extend(validated)
    if errors:
        note = (
            f"; validation stopped after {checked} of {len(instances)} instances"
            if checked < len(instances)
            else ""
        )
        raise validation_api_error(errors, total=total, note=note)
    return out


def _from_validation(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False)
    return validation_api_error(errors, total=exc.error_count())


def _required() -> dict[str, str]:
    return {"field": "body", "reason": "field required"}
