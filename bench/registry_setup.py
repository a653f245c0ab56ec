"""A temporary SQLite MLflow registry (or a champion directory) holding the benchmarked bundle
as the signed champion, verified by the API at start-up as in production.

`make serve` serves the champion of ``sqlite:///mlflow.db``; the benchmark times the same
configuration against a registry of its own, so the project's mlflow.db is never touched.
"""

from __future__ import annotations

import json
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
    source reads): (the directory, the public PEM the API must trust)."""
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
    dest = root / "champion"
    build_champion(model_dir, dest, record, key, include=("model.json", "serving"))
    return dest, public_pem(key.public_key).decode()


def register_champion(model_dir: Path, root: Path, input_example: pd.DataFrame) -> tuple[str, str]:
    """Register ``model_dir`` in a new registry under ``root``, promoted and signed with a
    fresh key; return (its tracking URI, the public PEM the API must trust)."""
    import os

    uri = f"sqlite:///{root / 'mlflow.db'}"
    meta = json.loads((model_dir / "model.json").read_text())
    private, pem = signing_pair(root)
    # As the register stage tags it: the registry source verifies the bundle against it.
    tags = {"git_commit": "bench", "data_md5": str(meta.get("data_md5") or "bench")}
    if meta.get("serving_sha256"):
        tags["serving_sha256"] = str(meta["serving_sha256"])
    os.environ["HOUSING_SIGNING_KEY_FILE"] = str(private)
    try:
        registration = _register(model_dir, input_example, uri, tags, root)
    finally:
        os.environ.pop("HOUSING_SIGNING_KEY_FILE", None)
    if not registration.promoted:
        raise RuntimeError(f"the benchmark bundle was not promoted to champion: {registration}")
    return uri, pem


def _register(model_dir: Path, input_example: pd.DataFrame, uri: str, tags: dict, root: Path):
    from housing.artifact import TRUSTED_TYPES, bundle_only, load_bundle
    from housing.registry import GateConfig, log_and_register

    with bundle_only(model_dir) as bundle:
        return log_and_register(
            sk_model=load_bundle(model_dir).model,
            bundle_dir=bundle,
            params={"bench": True},
            metrics={"r2": 0.9, "rmse": 40_000.0},
            tags=tags,
            plots=[],
            description="serve_load benchmark",
            input_example=input_example,
            gates=GateConfig(min_r2=0.0, max_rmse=1e12),
            trusted_types=list(TRUSTED_TYPES),
            tracking_uri=uri,
            artifact_location=(root / "mlartifacts").as_uri(),
            force_promote_reason="benchmark: the bundle under test is the champion",
        )
