"""Operator actions, behind the ADMIN_TOKEN bearer token."""

from __future__ import annotations

from functools import partial

import anyio
from fastapi import APIRouter

from serve.deps import AdminDep, SettingsDep, StoreDep
from serve.errors import ApiError
from serve.model_store import ReloadBusyError
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
        503: {
            "model": ERROR_RESPONSES[503]["model"],
            "description": "Another load holds the model lock, or RELOAD_TIMEOUT_S passed",
        },
    },
)
async def reload(_: AdminDep, store: StoreDep, settings: SettingsDep) -> OrjsonResponse:
    """Check the model source now and swap in a new model if there is one."""
    timeout = settings.reload_timeout_s
    # Half the budget to get the model lock, so a held lock answers `reload_busy` before the
    # overall deadline (`reload_timeout`) can fire.
    check = partial(store.check_for_update, force=True, lock_timeout=timeout / 2)
    try:
        with anyio.fail_after(timeout):
            # Abandoned on timeout: a load cannot be interrupted; it finishes in its thread
            # (still holding the lock) and /api/v1/model reports its outcome.
            outcome = await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
    except ReloadBusyError as exc:
        raise ApiError(503, "reload_busy", f"reload not started: {exc}", headers=_RETRY) from None
    except TimeoutError:
        raise ApiError(
            503,
            "reload_timeout",
            f"the reload did not finish within RELOAD_TIMEOUT_S={timeout:g} s; it goes on in "
            "the background and GET /api/v1/model reports its outcome",
            headers=_RETRY,
        ) from None
    return OrjsonResponse(
        {
            "reloaded": outcome.reloaded,
            "model_version": outcome.model_version,
            "error": outcome.error,
        }
    )


_RETRY = {"Retry-After": "5"}
