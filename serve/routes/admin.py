"""Operator actions, behind the ADMIN_TOKEN bearer token."""

from __future__ import annotations

import anyio
from fastapi import APIRouter

from serve.deps import AdminDep, StoreDep
from serve.responses import OrjsonResponse
from serve.schemas import ERROR_RESPONSES, ReloadPublic

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.post(
    "/reload",
    response_model=ReloadPublic,
    responses={
        401: {"description": "Missing or wrong bearer token"},
        404: {"description": "Disabled: ADMIN_TOKEN is not set"},
        500: ERROR_RESPONSES[500],
    },
)
async def reload(_: AdminDep, store: StoreDep) -> OrjsonResponse:
    """Check the model source now and swap in a new model if there is one."""
    outcome = await anyio.to_thread.run_sync(lambda: store.check_for_update(force=True))
    return OrjsonResponse(
        {
            "reloaded": outcome.reloaded,
            "model_version": outcome.model_version,
            "error": outcome.error,
        }
    )
