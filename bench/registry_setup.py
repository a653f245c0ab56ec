"""A temporary SQLite MLflow registry (or a champion directory) holding the benchmarked bundle
as the signed champion, verified by the API at start-up as in production.

`make serve` serves the champion of ``sqlite:///mlflow.db``; the benchmark times the same
configuration against a registry of its own, so the project's mlflow.db is never touched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


def signing_pair(root: Path) -> tuple[Path, str]:
    """A fresh promotion key pair for the benchmark: (private key file, public PEM text)."""
    from housing.signing import SigningKey, write_keypair
    from housing.signing.keys import public_pem

    key = SigningKey.generate()
    private, _public, _kid = write_keypair(root / "keys", key)
    return private, public_pem(key.public_key).decode()


def signed_champion(model_dir: Path, root: Path) -> tuple[Path, str]:
    """``model_dir`` promoted and signed as a champion directory (what `make serve`'s local
    source reads), with ``compiled/`` as a promotion writes it (the bundle's own, else built
    here when this machine can): (the directory, the public PEM the API must trust)."""
    from housing.signing import PromotionRecord, SigningKey, build_champion, now_utc
    from housing.signing.keys import public_pem

    meta = json.loads((model_dir / "model.json").read_text())
    key = SigningKey.generate()
    record = PromotionRecord(
        name=str(meta.get("name") or "housing_price_model"),
        version="1",
        alias="champion",
        data_md5=str(meta.get("data_md5") or "unknown"),
        git_commit="bench",
        decision="benchmark",
        sequence=1,
        timestamp=now_utc(),
        who="bench",
    )
    has_compiled = (model_dir / "compiled").is_dir()
    include = ("model.json", "serving", *(("compiled",) if has_compiled else ()))
    dest = root / "champion"
    build_champion(model_dir, dest, record, key, include=include, compiled=not has_compiled)
    return dest, public_pem(key.public_key).decode()


def register_champion(model_dir: Path, root: Path, input_example: pd.DataFrame) -> tuple[str, str]:
    """Register ``model_dir`` in a new registry under ``root``, promoted and signed with a
    fresh key; return (its tracking URI, the public PEM the API must trust)."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    private, pem = signing_pair(root)
    with _signing(private):
        registration = _register(
            model_dir,
            input_example,
            uri,
            root,
            description="serve_load benchmark",
            force_promote_reason="benchmark: the bundle under test is the champion",
        )
    if not registration.promoted:
        raise RuntimeError(f"the benchmark bundle was not promoted to champion: {registration}")
    return uri, pem


def register_challenger(model_dir: Path, root: Path, input_example: pd.DataFrame, uri: str) -> None:
    """Register ``model_dir`` again in ``register_champion``'s registry, held by the gates, so
    it takes the ``challenger`` alias by a move signed with the same key."""
    with _signing(root / "keys" / "signing-key.pem"):
        # No evaluation: the paired gate cannot compare, so the version is held.
        held = _register(
            model_dir, input_example, uri, root, description="benchmark: the challenger"
        )
    if held.promoted:
        raise RuntimeError("the second registration was promoted; the benchmark needs a challenger")


@contextmanager
def _signing(private: Path) -> Iterator[None]:
    os.environ["HOUSING_SIGNING_KEY_FILE"] = str(private)
    try:
        yield
    finally:
        os.environ.pop("HOUSING_SIGNING_KEY_FILE", None)


def _register(
    model_dir: Path,
    input_example: pd.DataFrame,
    uri: str,
    root: Path,
    *,
    description: str,
    force_promote_reason: str | None = None,
):
    from housing.artifact import TRUSTED_TYPES, bundle_only, load_bundle
    from housing.registry import GateConfig, log_and_register

    meta = json.loads((model_dir / "model.json").read_text())
    # As the register stage tags it: the registry source verifies the bundle against it.
    tags = {"git_commit": "bench", "data_md5": str(meta.get("data_md5") or "bench")}
    if meta.get("serving_sha256"):
        tags["serving_sha256"] = str(meta["serving_sha256"])
    with bundle_only(model_dir) as bundle:
        return log_and_register(
            sk_model=load_bundle(model_dir).model,
            bundle_dir=bundle,
            params={"bench": True},
            metrics={"r2": 0.9, "rmse": 40_000.0},
            tags=tags,
            plots=[],
            description=description,
            input_example=input_example,
            gates=GateConfig(min_r2=0.0, max_rmse=1e12),
            trusted_types=list(TRUSTED_TYPES),
            tracking_uri=uri,
            artifact_location=(root / "mlartifacts").as_uri(),
            force_promote_reason=force_promote_reason,
        )
