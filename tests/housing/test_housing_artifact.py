"""The model bundle: canonical bytes, sha256-checked loads, and a complete trusted-type list."""

from __future__ import annotations

import builtins
import itertools
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from housing.artifact import (
    MODEL_FILE,
    TRUSTED_TYPES,
    ArtifactError,
    dumps_model,
    load_bundle,
    loads_model,
    save_bundle,
)
from housing.contract import TARGET
from housing.io import sha256_bytes
from housing.model import FAMILIES, IMPUTERS, FeatureConfig, ModelSpec, build_model

SMALL = {
    "linear": {"alpha": 1.0},
    "random_forest": {"n_estimators": 3, "max_depth": 4},
    "hist_gradient_boosting": {"max_iter": 5},
    "lightgbm": {"n_estimators": 5, "num_leaves": 7},
}
# Every feature group on, so every fitted type a real model can hold is present.
ALL_GROUPS = FeatureConfig(n_clusters=3, rotations=(30.0,), neighbors=4, neighbor_folds=3)


@pytest.fixture(scope="module")
def rows(small_train: pd.DataFrame) -> pd.DataFrame:
    missing = small_train[small_train["total_bedrooms"].isna()]
    return pd.concat([small_train.dropna().head(200), missing]).reset_index(drop=True)


# Every model the pipeline can build: each family with each imputer, and a bag of boosters.
SPECS = {
    **{
        f"{family}-{imputer}": ModelSpec(imputer, ALL_GROUPS, family, SMALL[family], seed=0)
        for family, imputer in itertools.product(FAMILIES, IMPUTERS)
    },
    "lightgbm-bag": ModelSpec("median", ALL_GROUPS, "lightgbm", SMALL["lightgbm"], seed=0, bag=2),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_trusted_types_cover_every_model(name, rows):
    model = build_model(SPECS[name]).fit(rows.drop(columns=[TARGET]), rows[TARGET])
    data = dumps_model(model)
    untrusted = set(sio.get_untrusted_types(data=data))
    assert untrusted <= set(TRUSTED_TYPES), sorted(untrusted - set(TRUSTED_TYPES))
    loaded = loads_model(data, expected_sha256=sha256_bytes(data))
    X = rows.drop(columns=[TARGET]).head(20)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_trusted_types_are_no_wider_than_the_models_need(rows):
    """Every reviewed type is used by some model the pipeline can build (no stale trust,
    e.g. a KD-tree): every family and imputer, and a bag of boosters."""
    used: set[str] = set()
    for spec in SPECS.values():
        model = build_model(spec).fit(rows.drop(columns=[TARGET]), rows[TARGET])
        used |= set(sio.get_untrusted_types(data=dumps_model(model)))
    # skops trusts scikit-learn's registered estimators by default, and whether the
    # experimental IterativeImputer counts depends on what the process imported before.
    maybe_default = {"sklearn.impute._iterative.IterativeImputer"}
    assert set(TRUSTED_TYPES) - used <= maybe_default, sorted(set(TRUSTED_TYPES) - used)


def test_bundle_round_trip(model_bundle_dir, small_train, tmp_path):
    bundle = load_bundle(model_bundle_dir)
    assert bundle.sha256 == sha256_bytes((model_bundle_dir / MODEL_FILE).read_bytes())
    assert bundle.meta["name"] == "housing_price_model"
    copy = tmp_path / "copy"
    sha = save_bundle(copy, bundle.model, {k: v for k, v in bundle.meta.items() if k != "sha256"})
    assert sha == bundle.sha256, "re-saving a loaded model gives the same bytes"
    X = small_train.drop(columns=[TARGET]).head(50)
    np.testing.assert_array_equal(load_bundle(copy).model.predict(X), bundle.model.predict(X))


@pytest.mark.slow
def test_canonical_bytes_are_identical_in_another_process(model_bundle_dir, tmp_path):
    """skops names arrays by id() (a memory address): the canonical form must not depend on it."""
    out = tmp_path / "redumped.skops"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from housing.artifact import dumps_model, load_bundle
        padding = [bytearray(1000) for _ in range(5000)]  # shift this process's addresses
        model = load_bundle({str(model_bundle_dir)!r}).model
        Path({str(out)!r}).write_bytes(dumps_model(model))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert out.read_bytes() == (model_bundle_dir / MODEL_FILE).read_bytes()


def test_dumps_are_canonical_within_a_process(model_bundle_dir):
    model = load_bundle(model_bundle_dir).model
    assert dumps_model(model) == dumps_model(model)


def test_tampered_model_bytes_are_refused(model_bundle_dir, tmp_path):
    bundle = shutil.copytree(model_bundle_dir, tmp_path / "bundle")
    data = bytearray((bundle / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_bundle(bundle)


def test_a_different_expected_sha256_is_refused(model_bundle_dir):
    with pytest.raises(ArtifactError, match="refusing to load a tampered or mismatched"):
        load_bundle(model_bundle_dir, expected_sha256="0" * 64)


def test_untrusted_types_are_refused_even_with_a_matching_sha256():
    """A well-formed file whose sha256 matches still cannot smuggle in code (here ``eval``)."""
    model = FunctionTransformer(builtins.eval).fit(np.ones((3, 1)))
    data = dumps_model(model)
    with pytest.raises(ArtifactError, match=r"model contains untrusted types: builtins\.eval$"):
        loads_model(data, expected_sha256=sha256_bytes(data))


def test_incomplete_or_unrecorded_bundles_are_refused(model_bundle_dir, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy2(model_bundle_dir / MODEL_FILE, partial / MODEL_FILE)
    with pytest.raises(ArtifactError, match=r"incomplete: .*model\.json not found"):
        load_bundle(partial)
    (partial / "model.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable model metadata"):
        load_bundle(partial)
    (partial / "model.json").write_text("{}")
    with pytest.raises(ArtifactError, match="records no sha256"):
        load_bundle(partial)
    assert not list(Path(partial).glob("*.tmp"))
