"""The served model's identity, its data contract, and map context."""

from __future__ import annotations

from fastapi import APIRouter

from serve.deps import ModelDep, SettingsDep, StoreDep
from serve.errors import ApiError
from serve.responses import OrjsonResponse
from serve.schemas import ERROR_RESPONSES, ContextPublic, ModelPublic

router = APIRouter(prefix="/api/v1", tags=["model"])


def _verification(settings: SettingsDep) -> str:
    n = len(settings.verify_keys)
    return f"on ({n} trusted key{'s' if n != 1 else ''})" if n else "off (no keys configured)"


@router.get("/model", response_model=ModelPublic)
async def model_info(store: StoreDep, settings: SettingsDep) -> OrjsonResponse:
    """Identity, metrics, lineage, source, load time, last reload error, and MAX_BATCH."""
    current = store.current
    body: dict = {
        "last_reload_error": store.last_reload_error,
        "last_reload_check_at": store.last_reload_check_at,
        "load_errors": list(store.skipped + store.load_errors),
        "max_batch": settings.max_batch,
        "verification": _verification(settings),
    }
    if current is not None:
        ident = current.identity
        body |= {
            "name": ident.name,
            "version": ident.version,
            "alias": ident.alias,
            "run_id": ident.run_id,
            "metrics": ident.metrics,
            "git_commit": ident.git_commit,
            "data_md5": ident.data_md5,
            "sha256": ident.sha256,
            "source": ident.source,
            "source_detail": ident.source_detail,
            "signed": ident.signed,
            "key_id": ident.key_id,
            "promotion": ident.promotion,
            "loaded_at": current.loaded_at,
            "scorer": getattr(current.serving, "scorer", None),
        }
    return OrjsonResponse(ModelPublic(**body).model_dump())


@router.get("/contract", responses={503: ERROR_RESPONSES[503]})
async def contract(model: ModelDep) -> OrjsonResponse:
    """The data contract (fields, bounds, categories, example) of the served model."""
    return OrjsonResponse(model.contract_dict)


@router.get(
    "/context",
    response_model=ContextPublic,
    responses={404: {"description": "The model has no neighbour step"}, 503: ERROR_RESPONSES[503]},
)
async def context(model: ModelDep) -> OrjsonResponse:
    """Up to CONTEXT_POINTS training districts (latitude, longitude, value) for a map."""
    if model.context_points is None:
        raise ApiError(404, "not_found", "the served model keeps no training districts")
    return OrjsonResponse(
        {
            "points": model.context_points,
            "count": len(model.context_points),
            "total": model.context_total,
        }
    )
