"""Dependencies as `Annotated` aliases: settings, state, the loaded model, the admin check.

All are `async def`: FastAPI runs plain `def` dependencies in the thread pool, which costs a
thread hop per dependency per request.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from serve.config import Settings
from serve.errors import ApiError
from serve.loaded_model import LoadedModel
from serve.model_store import ModelStore
from serve.state import ServeState


async def get_state(request: Request) -> ServeState:
    return request.app.state.serve


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.serve.settings


async def get_store(request: Request) -> ModelStore:
    return request.app.state.serve.store


def current_model(store: ModelStore) -> LoadedModel:
    """The model serving now, or 503 saying why there is none (draining still serves)."""
    model = store.current
    if model is None:
        reason = store.not_ready_reason() or "no model loaded"
        raise ApiError(503, "not_ready", reason, headers={"Retry-After": "5"})
    return model


async def get_model(request: Request) -> LoadedModel:
    # Reads app state directly: each nested dependency costs microseconds per request.
    return current_model(request.app.state.serve.store)


async def require_admin(
    request: Request, settings: Annotated[Settings, Depends(get_app_settings)]
) -> None:
    """Bearer token from ADMIN_TOKEN; the admin routes answer 404 when no token is set."""
    if settings.admin_token is None:
        raise ApiError(404, "disabled", "admin endpoints are disabled (ADMIN_TOKEN is not set)")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected = settings.admin_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise ApiError(
            401,
            "unauthorized",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


StateDep = Annotated[ServeState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
AdminDep = Annotated[None, Depends(require_admin)]
