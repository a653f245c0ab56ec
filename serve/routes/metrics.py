"""Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from serve.deps import StateDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    """Request counts and latency by route and status, predictions, model version, reloads."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
