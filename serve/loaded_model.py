"""An immutable, ready-to-serve model: the serving bundle, validator, context and identity.

Every source ends with :func:`load_directory` once ``model.json`` + ``serving/`` are on local
disk: the serving bundle (numpy + LightGBM's C library, never scikit-learn or skops) is
verified and loaded, the contract example priced once, the map's context points read.

The store swaps whole `LoadedModel` objects, so a request that picked one up keeps a
consistent model, validator and version even while a reload swaps in another.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from housing.contract import RAW_FEATURES, Contract
from housing.intervals import Interval
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
    signed: bool = False  # a trusted key's signature covers the bundle and its record
    key_id: str | None = None
    promotion_sequence: int | None = None  # the record's; an older one is refused on reload
    promotion: dict[str, Any] | None = None  # action, sequence, who, timestamp, decision


@dataclass(frozen=True)
class LoadedModel:
    identity: ModelIdentity
    predictor: Any  # a housing.serving.ServingModel (anything with .predict(numeric, cats))
    contract: Contract
    contract_dict: dict[str, Any]
    validator: RequestValidator
    context_points: list[dict[str, float]] | None
    context_total: int
    loaded_at: str
    interval: Interval  # the bundle's hashed interval.json (docs/intervals.md)
    # The bundle's hashed reference.json (training-data summaries for the drift gauges,
    # housing.monitor.reference); None for a bundle written before it existed.
    reference: dict[str, Any] | None = None

    @property
    def serving(self) -> Any:
        return self.predictor

    def predict(self, numeric: np.ndarray, categories: list[int]) -> np.ndarray:
        return self.predictor.predict(numeric, categories)

    def predict_interval(
        self, numeric: np.ndarray, categories: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prices and their interval's low and high ends at ``interval.level`` (USD)."""
        prices = self.predictor.predict(numeric, categories)
        low, high = self.interval.bounds(prices)
        return prices, low, high


def load_directory(
    directory: Path,
    *,
    source: str,
    alias: str | None,
    default_name: str,
    expected_sha256: str | None = None,
    identity_overrides: dict[str, Any] | None = None,
    context_limit: int,
    signed: bool | None = None,
) -> LoadedModel:
    """Verify and assemble the bundle in ``directory`` (``model.json`` + ``serving/``).

    ``expected_sha256`` is the serving bundle's sha256 as another party recorded it (the
    registry's ``serving_sha256`` tag); without it, ``model.json``'s own value is checked.
    ``identity_overrides`` replaces identity fields (the registry's name, version, run id).
    ``signed`` is the caller's verdict on the champion's signature (its compiled predictor
    is used only when True; None lets the loader check it again with the environment's keys).
    Raises :class:`serve.sources.base.SourceError` with a one-line reason.
    """
    from housing.serving import BundleError, load_serving
    from serve.sources.base import SourceError

    try:
        serving = load_serving(Path(directory), expected_sha256=expected_sha256, signed=signed)
    except BundleError as exc:
        raise SourceError(str(exc)) from exc
    identity = identity_from_meta(
        serving.meta, source=source, alias=alias, default_name=default_name
    )
    if identity_overrides:
        identity = dataclasses.replace(identity, **identity_overrides)
    try:
        return assemble(serving, identity, context_limit=context_limit)
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"unusable model bundle {directory}: {exc}") from exc


def assemble(serving: Any, identity: ModelIdentity, *, context_limit: int = 2000) -> LoadedModel:
    """Build everything a request needs from a verified serving model (off the request path).

    The contract (request bounds, categories, example) and the prediction interval come from
    the serving bundle's hashed ``contract.json`` and ``interval.json``, never from
    ``model.json``, which nothing verifies.
    """
    contract = Contract.from_dict(serving.contract)
    index = {c: i for i, c in enumerate(serving.categories)}
    validator = RequestValidator(contract, index)
    missing = [c for c in contract.categories if c not in index]
    if missing:
        raise ValueError(f"contract categories unknown to the model: {missing}")
    _warm_up(serving, validator, contract)
    points, total = serving.context(context_limit)
    return LoadedModel(
        identity=identity,
        predictor=serving,
        contract=contract,
        contract_dict=contract.to_dict(),
        validator=validator,
        context_points=points,
        context_total=total,
        loaded_at=utc_now_iso(),
        interval=serving.interval,
        reference=getattr(serving, "reference", None),
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
    """Identity of a bundle read from a file (local or GCS): everything comes from model.json.

    ``sha256`` is the skops model's (the source of truth the bundle was exported from);
    ``fingerprint`` the serving bundle's, which is what the API loads.
    """
    sha = str(meta["sha256"])
    serving_sha = str(meta.get("serving_sha256") or sha)
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
        fingerprint=serving_sha,
        run_id=meta.get("run_id"),
        metrics=metrics,
        git_commit=meta.get("git_commit"),
        data_md5=meta.get("data_md5"),
    )
