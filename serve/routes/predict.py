"""Price districts with the loaded model."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter

from serve.deps import ModelDep, StateDep
from serve.errors import ApiError
from serve.logs import request_id_var
from serve.prediction_log import PredictionRecord
from serve.responses import OrjsonResponse
from serve.schemas import ERROR_RESPONSES, PredictRequest, PredictResponse

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["predict"])


@router.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES)
async def predict(body: PredictRequest, model: ModelDep, state: StateDep) -> OrjsonResponse:
    """Predict the median house value of 1 to MAX_BATCH districts."""
    start = time.perf_counter()
    numeric, categories = model.validator.to_arrays(
        body.instances, max_batch=state.settings.max_batch
    )
    request_id = request_id_var.get()
    try:
        prices = model.predict(numeric, categories)
    except Exception:
        logger.exception("model failed on %d instance(s)", len(categories))
        raise ApiError(
            500, "internal_error", f"the model failed; quote request id {request_id}"
        ) from None
    ident = model.identity
    latency_ms = (time.perf_counter() - start) * 1000
    state.metrics.predictions.labels(ident.version).inc(len(prices))
    if state.prediction_log is not None:
        state.prediction_log.record(
            PredictionRecord(
                count=len(prices),
                mean=float(prices.mean()),
                min=float(prices.min()),
                max=float(prices.max()),
                latency_ms=latency_ms,
            )
        )
    return OrjsonResponse(
        {
            "predictions": [{"predicted_price": p} for p in prices.round(2).tolist()],
            "model_name": ident.name,
            "model_version": ident.version,
            "model_alias": ident.alias,
            "request_id": request_id,
        }
    )
