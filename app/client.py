"""HTTP client for the prediction API: bounded timeouts and one error type per kind of failure."""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class FieldError:
    """One field-level reason from the API's error body (``instances[3].median_income``)."""

    field: str
    reason: str

    @property
    def row(self) -> int | None:
        """Index of the instance the field belongs to, if the path names one."""
        if not self.field.startswith("instances["):
            return None
        head = self.field[len("instances[") :].split("]", 1)[0]
        return int(head) if head.isdigit() else None

    @property
    def name(self) -> str:
        """The input's name without the ``instances[i].`` prefix (``median_income``)."""
        if self.field.startswith("instances[") and "]." in self.field:
            return self.field.split("].", 1)[1]
        return self.field.removeprefix("body.")

    @property
    def names(self) -> tuple[str, ...]:
        """Every input the field names: a cross-field rule may name two (``a,b``)."""
        return tuple(part for part in re.split(r"[,+&\s]+", self.name) if part)


@dataclass(frozen=True)
class PriceInterval:
    """A prediction's interval as the API answers it: ``low <= price <= high`` at ``level``."""

    low: float
    high: float
    level: float


def prediction_interval(prediction: Any) -> PriceInterval | None:
    """The ``interval`` of one element of ``predictions``, or None if absent or malformed
    (an older API answers prices only; the price is still shown)."""
    interval = prediction.get("interval") if isinstance(prediction, Mapping) else None
    if not isinstance(interval, Mapping):
        return None
    try:
        low, high, level = (float(interval[k]) for k in ("low", "high", "level"))
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high and 0 < level < 1):
        return None
    return PriceInterval(low, high, level)


class ApiError(Exception):
    """Base class of every failure talking to the API; ``message`` is one line for people."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class ApiUnavailableError(ApiError):
    """The API cannot answer now (down, timed out, not ready, server error): worth a retry."""


class ApiRejectedError(ApiError):
    """The API refused the request (4xx); ``fields`` says which input and why."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        fields: Sequence[FieldError] = (),
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status = status
        self.code = code
        self.fields = list(fields)


class ApiClient:
    """Talks to one API base URL over one pooled keep-alive client; every call is bounded.

    Close it (``close()`` or ``with``) when done: the app keeps one per Streamlit session
    (``app.session``) and closes it when the session ends.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._http = httpx.Client(
            timeout=self._timeout,
            transport=transport,
            headers={"Accept": "application/json"},
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
        )

    def close(self) -> None:
        """Close the pooled connections (idempotent)."""
        self._http.close()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ready(self) -> dict[str, Any]:
        """GET /ready; raises ApiUnavailableError while no model is loaded."""
        return self._request("GET", "/ready")

    def contract(self) -> dict[str, Any]:
        """GET the data contract the loaded model was trained under."""
        return self._request("GET", f"{API_PREFIX}/contract")

    def model(self) -> dict[str, Any]:
        """GET the champion's name, version, alias, metrics and lineage."""
        return self._request("GET", f"{API_PREFIX}/model")

    def monitoring(self) -> dict[str, Any]:
        """GET live drift by feature, the shadow's agreement and refusals by field."""
        return self._request("GET", f"{API_PREFIX}/monitoring")

    def context(self) -> list[dict[str, float]] | None:
        """GET training districts for the map, or None when the API does not serve them."""
        try:
            body = self._request("GET", f"{API_PREFIX}/context")
        except ApiError as exc:
            # The map only loses its context layer, so this never blocks a prediction.
            logger.info("No map context from the API: %s", exc.message)
            return None
        points = body.get("points") if isinstance(body, dict) else None
        if not isinstance(points, list):
            return None
        return [p for p in points if _is_point(p)]

    def predict(self, instances: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """POST instances to /predict and return the body (predictions plus model identity)."""
        payload = {"instances": [_json_safe(row) for row in instances]}
        body = self._request("POST", f"{API_PREFIX}/predict", json=payload)
        predictions = body.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(instances):
            raise ApiUnavailableError(
                f"The API answered {len(instances)} instances with a malformed prediction list.",
                request_id=body.get("request_id"),
            )
        return body

    def _request(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        headers = {"X-Request-ID": uuid.uuid4().hex}
        try:
            response = self._http.request(method, url, json=json, headers=headers)
        except httpx.TimeoutException:
            raise ApiUnavailableError(
                f"The prediction API at {self.base_url} did not answer within "
                f"{self._timeout.read:g} s."
            ) from None
        except httpx.HTTPError as exc:
            raise ApiUnavailableError(
                f"Cannot reach the prediction API at {self.base_url} ({type(exc).__name__})."
            ) from None
        return _decode(response)


def _decode(response: httpx.Response) -> dict[str, Any]:
    """Return the JSON body of a 2xx answer, or raise the error it describes."""
    request_id = response.headers.get("X-Request-ID")
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        if not isinstance(body, dict):
            raise ApiUnavailableError(
                f"The API answered {response.status_code} without a JSON object.",
                request_id=request_id,
            )
        return body
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    request_id = (body.get("request_id") if isinstance(body, dict) else None) or request_id
    message = str(error.get("message") or f"HTTP {response.status_code}")
    code = str(error.get("code") or "")
    status = response.status_code
    if status == 503 or code == "not_ready":
        raise ApiUnavailableError(
            f"The prediction API is up but not ready: {message}", request_id=request_id
        )
    if status >= 500:
        raise ApiUnavailableError(f"The prediction API failed: {message}", request_id=request_id)
    fields = [
        FieldError(field=str(item.get("field", "")), reason=str(item.get("reason", "")))
        for item in error.get("fields") or []
        if isinstance(item, dict)
    ]
    raise ApiRejectedError(message, status=status, code=code, fields=fields, request_id=request_id)


def _json_safe(row: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values with NaN (missing in pandas) as None: JSON has no NaN or numpy."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "item"):  # numpy scalar
            value = value.item()
        out[str(key)] = None if isinstance(value, float) and math.isnan(value) else value
    return out


def _is_point(point: Any) -> bool:
    if not isinstance(point, dict):
        return False
    try:
        return all(math.isfinite(float(point[key])) for key in ("latitude", "longitude", "value"))
    except (KeyError, TypeError, ValueError):
        return False
