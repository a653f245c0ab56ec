"""An immutable, ready-to-serve model: the fitted object, its fast path, validator and identity.

The store swaps whole `LoadedModel` objects, so a request that picked one up keeps a
consistent model, validator and version even while a reload swaps in another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from housing.contract import RAW_FEATURES, Contract
from serve.validation import RequestValidator


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ModelIdentity:
    """Who the model is and where it came from, as GET /api/v1/model reports it."""

    name: str
    version: str
    alias: str | None
    source: str
    sha256: str
    fingerprint: str  # changes exactly when the source's model changes
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    git_commit: str | None = None
    data_md5: str | None = None
    source_detail: str | None = None  # how the source answered, e.g. "registry (sqlite): ..."


@dataclass(frozen=True)
class LoadedModel:
    identity: ModelIdentity
    model: Any
    predictor: Any
    contract: Contract
    contract_dict: dict[str, Any]
    validator: RequestValidator
    context_points: list[dict[str, float]] | None
    context_total: int
    loaded_at: str

    def predict(self, numeric: np.ndarray, categories: list[int]) -> np.ndarray:
        return self.predictor.predict(numeric, categories)


def context_points(model: Any, limit: int) -> tuple[list[dict[str, float]] | None, int]:
    """Up to ``limit`` training districts (every k-th) from the model's neighbour step.

    The step stores (lat, lon·cos lat) and the transformed target; invert both. None when the
    model has no neighbour step.
    """
    steps = dict(getattr(getattr(model, "regressor_", None), "steps", []) or [])
    neighbors = steps.get("neighbors")
    coords = getattr(neighbors, "train_coords_", None)
    target = getattr(neighbors, "train_target_", None)
    if coords is None or target is None or limit <= 0:
        return None, 0
    total = len(target)
    step = max(1, math.ceil(total / limit))
    lat = coords[::step, 0]
    lon = coords[::step, 1] / np.cos(np.deg2rad(lat))
    inverse = getattr(model, "inverse_func", None)
    values = inverse(target[::step]) if inverse is not None else target[::step]
    points = [
        {
            "latitude": round(float(a), 5),
            "longitude": round(float(o), 5),
            "value": round(float(v), 2),
        }
        for a, o, v in zip(lat, lon, values, strict=True)
        if math.isfinite(a) and math.isfinite(o) and math.isfinite(v)
    ]
    return points[:limit], total


def assemble(bundle: Any, identity: ModelIdentity, *, context_limit: int = 2000) -> LoadedModel:
    """Build everything a request needs from a verified bundle (off the request path)."""
    from housing.fastpath import FastPredictor

    meta = bundle.meta
    contract = Contract.from_dict(meta["contract"])
    predictor = FastPredictor(bundle.model)
    index = {c: i for i, c in enumerate(predictor.categories)}
    validator = RequestValidator(contract, index)
    missing = [c for c in contract.categories if c not in index]
    if missing:
        raise ValueError(f"contract categories unknown to the model: {missing}")
    _warm_up(predictor, validator, contract)
    points, total = context_points(bundle.model, context_limit)
    return LoadedModel(
        identity=identity,
        model=bundle.model,
        predictor=predictor,
        contract=contract,
        contract_dict=contract.to_dict(),
        validator=validator,
        context_points=points,
        context_total=total,
        loaded_at=utc_now_iso(),
    )


def _warm_up(predictor: Any, validator: RequestValidator, contract: Contract) -> None:
    """Price the contract's example once: proves the model works before it is swapped in,
    and pays first-call costs here rather than on the first request."""
    example = contract.example
    if not example:
        return
    from types import SimpleNamespace

    row = SimpleNamespace(**{name: example.get(name) for name in RAW_FEATURES})
    numeric, cats = validator.to_arrays([row], max_batch=1)
    price = predictor.predict(numeric, cats)
    if not np.isfinite(price).all():
        raise ValueError(f"the model priced the contract example as {price.tolist()}")


def identity_from_meta(
    meta: dict[str, Any], *, source: str, alias: str | None, default_name: str
) -> ModelIdentity:
    """Identity of a bundle read from a file (local or GCS): everything comes from model.json."""
    sha = str(meta["sha256"])
    metrics = {
        str(k): float(v)
        for k, v in (meta.get("metrics") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    version = meta.get("version") or meta.get("registry_version") or f"sha256:{sha[:12]}"
    return ModelIdentity(
        name=str(meta.get("name") or default_name),
        version=str(version),
        alias=alias,
        source=source,
        sha256=sha,
        fingerprint=sha,
        run_id=meta.get("run_id"),
        metrics=metrics,
        git_commit=meta.get("git_commit"),
        data_md5=meta.get("data_md5"),
    )
