"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from serve.deps import StoreDep
from serve.errors import ApiError
from serve.responses import OrjsonResponse
from serve.schemas import ERROR_RESPONSES, HealthPublic, ReadyPublic

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
async def health() -> OrjsonResponse:
    """Liveness: the process answers (200 even without a model)."""
    return OrjsonResponse({"status": "ok"})


@router.get("/ready", response_model=ReadyPublic, responses={503: ERROR_RESPONSES[503]})
async def ready(store: StoreDep) -> OrjsonResponse:
    """Readiness: 200 when a model is loaded and the process is not shutting down."""
    reason = store.not_ready_reason()
    model = store.current
    if reason is not None or model is None:
        raise ApiError(503, "not_ready", reason or "no model loaded", headers={"Retry-After": "5"})
    return OrjsonResponse({"status": "ready", "model_version": model.identity.version})
