"""Price districts with the loaded model.

The route is documented like any FastAPI route (its body and response models), but served
by `PredictRoute`: the handler reads the body itself, so the instance count is checked
before any element is validated (`serve.body`), and FastAPI's dependency solver and second
validation pass are skipped. Small bodies are scored inline on the event loop (faster than
a thread hop); large ones in a worker thread, so /health and /ready answer meanwhile.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

import anyio
import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from serve.body import parse_instances
from serve.deps import current_model
from serve.errors import ApiError
from serve.feature_log import batch_now
from serve.loaded_model import LoadedModel
from serve.logs import request_id_var
from serve.prediction_log import PredictionRecord
from serve.responses import OrjsonResponse
from serve.schemas import ERROR_RESPONSES, PredictRequest, PredictResponse
from serve.state import ServeState

logger = logging.getLogger(__name__)

# Bodies up to this size (about 150 instances at full precision, ~3 ms of scoring with the
# compiled predictor) are scored on the event loop; larger ones in a worker thread, so
# /health and /ready answer during a 1,000-instance batch. The hop to the thread and back
# cost a 100-instance request 0.4-1.2 ms of p50 (docs/api.md, "Where a request's time goes").
INLINE_MAX_BYTES = 32_768
# Worker threads scoring large batches at once (2 cores; the default pool stays free).
_SCORING_THREADS = 2
_limiter: anyio.CapacityLimiter | None = None


def _scoring_limiter() -> anyio.CapacityLimiter:
    global _limiter
    if _limiter is None:  # created inside the event loop, on first use
        _limiter = anyio.CapacityLimiter(_SCORING_THREADS)
    return _limiter


class Scored(NamedTuple):
    """A priced body: per-instance prices and interval ends rounded to cents, and the
    prices' mean, min and max for the prediction log; the parsed instances for the feature
    log."""

    prices: list[float]
    lows: list[float]
    highs: list[float]
    mean: float
    min: float
    max: float
    instances: list[dict[str, Any]]
    numeric: np.ndarray  # what the model scored, for the feature log's observers
    categories: list[int]


def score(raw: bytes, model: LoadedModel, max_batch: int) -> Scored:
    """Parse, check and price a body, with each price's interval."""
    instances = parse_instances(raw, max_batch)
    numeric, categories = model.validator.to_arrays(instances, max_batch=max_batch)
    try:
        prices, low, high = model.predict_interval(numeric, categories)
    except Exception:
        logger.exception("model failed on %d instance(s)", len(categories))
        raise _model_error("the model failed") from None
    # Rounding is monotone, so low <= price <= high still holds in cents.
    values, lows, highs = prices.round(2).tolist(), low.round(2).tolist(), high.round(2).tolist()
    if len(values) == 1:
        value = values[0]
        if not (math.isfinite(value) and math.isfinite(highs[0])):
            raise _non_finite(1)
        return Scored(values, lows, highs, value, value, value, instances, numeric, categories)
    if not (np.isfinite(prices).all() and np.isfinite(high).all()):
        raise _non_finite(int((~(np.isfinite(prices) & np.isfinite(high))).sum()))
    return Scored(
        values,
        lows,
        highs,
        float(prices.mean()),
        float(prices.min()),
        float(prices.max()),
        instances,
        numeric,
        categories,
    )


def _model_error(what: str) -> ApiError:
    return ApiError(500, "internal_error", f"{what}; quote request id {request_id_var.get()}")


def _non_finite(count: int) -> ApiError:
    logger.error("the model returned %d non-finite price(s)", count)
    return _model_error("the model returned a non-finite price")


class PredictRoute(APIRoute):
    """Serves the endpoint with the raw body; OpenAPI still comes from its signature."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return handle_predict


async def handle_predict(request: Request) -> Response:
    start = time.perf_counter()
    state: ServeState = request.app.state.serve
    model = current_model(state.store)
    raw = await request.body()
    max_batch = state.settings.max_batch
    if len(raw) <= INLINE_MAX_BYTES:
        scored = score(raw, model, max_batch)
    else:
        scored = await anyio.to_thread.run_sync(
            score, raw, model, max_batch, limiter=_scoring_limiter()
        )
    ident = model.identity
    count = len(scored.prices)
    state.metrics.count_predictions(ident.version, count)
    if state.prediction_log is not None:
        latency_ms = (time.perf_counter() - start) * 1000
        state.prediction_log.record(
            PredictionRecord(count, scored.mean, scored.min, scored.max, latency_ms)
        )
    if state.feature_log is not None:
        state.feature_log.submit(
            batch_now(
                scored.instances,
                scored.prices,
                scored.lows,
                scored.highs,
                model_name=ident.name,
                model_version=ident.version,
                request_id=request_id_var.get(),
                numeric=scored.numeric,
                categories=scored.categories,
                model=model,
            )
        )
    level = model.interval.level
    return OrjsonResponse(
        {
            "predictions": [
                {"predicted_price": p, "interval": {"low": lo, "high": hi, "level": level}}
                for p, lo, hi in zip(scored.prices, scored.lows, scored.highs, strict=True)
            ],
            "model_name": ident.name,
            "model_version": ident.version,
            "model_alias": ident.alias,
            "request_id": request_id_var.get(),
        }
    )


router = APIRouter(prefix="/api/v1", tags=["predict"], route_class=PredictRoute)


@router.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES)
async def predict(body: PredictRequest) -> PredictResponse:  # pragma: no cover - docs only
    """Predict the median house value of 1 to MAX_BATCH districts."""
    raise NotImplementedError("served by PredictRoute.handle_predict")
