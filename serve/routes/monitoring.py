"""What the monitoring sees now: live drift by feature, the shadow's agreement, refusals.

Read by the app's Monitoring tab; the same numbers are Prometheus gauges on /metrics.
Nothing here is computed on request: the feature log's thread keeps the drift window.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serve.deps import StateDep
from serve.responses import OrjsonResponse
from serve.schemas import MonitoringPublic

router = APIRouter(prefix="/api/v1", tags=["monitoring"])
PREDICT_ROUTE = "/api/v1/predict"


def _samples(metric: Any, name: str) -> list[Any]:
    return [s for family in metric.collect() for s in family.samples if s.name == name]


def _drift(state: Any) -> dict[str, Any]:
    cfg = state.settings
    snap = state.drift.snapshot() if state.drift is not None else {"available": False}
    enough = snap.get("instances", 0) >= cfg.drift_min_instances

    def judged(psi: float) -> dict[str, Any]:
        return {"psi": round(psi, 6), "drifted": enough and psi > cfg.drift_psi_threshold}

    prediction = snap.get("prediction")
    return {
        "available": snap["available"],
        "instances": snap.get("instances", 0),
        "window": cfg.drift_window,
        "threshold": cfg.drift_psi_threshold,
        "min_instances": cfg.drift_min_instances,
        "enough": enough,
        "features": {k: judged(v) for k, v in snap.get("features", {}).items()},
        "prediction": None if prediction is None else judged(prediction),
    }


@router.get("/monitoring", response_model=MonitoringPublic)
async def monitoring(state: StateDep) -> OrjsonResponse:
    """Live drift per feature (the last DRIFT_WINDOW instances), shadow agreement, refusals."""
    metrics = state.metrics
    requests = _samples(metrics.requests, "http_requests_total")
    refused = _samples(metrics.refusals, "refused_requests_total")
    shadow = getattr(state, "shadow", None)
    body = {
        "drift": _drift(state),
        "shadow": shadow.snapshot() if shadow is not None else None,
        "predict_requests": int(
            sum(s.value for s in requests if s.labels.get("route") == PREDICT_ROUTE)
        ),
        "refused_by_field": {s.labels["field"]: int(s.value) for s in refused},
    }
    return OrjsonResponse(body)
