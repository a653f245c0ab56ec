"""Behaviour of the model the pipeline registers (the ``pipeline_repo`` bundle, real test split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from housing.artifact import load_bundle
from housing.contract import NUMERIC_FEATURES, TARGET, Contract
from housing.io import read_json
from housing.serving import load_serving

pytestmark = pytest.mark.slow  # needs the pipeline run of the `pipeline_repo` fixture


@pytest.fixture(scope="module")
def bundle(pipeline_repo: Path):
    return load_bundle(pipeline_repo / "models")


@pytest.fixture(scope="module")
def test_split(pipeline_repo: Path) -> pd.DataFrame:
    return pd.read_parquet(pipeline_repo / "data/split/test.parquet")


@pytest.fixture(scope="module")
def districts(test_split: pd.DataFrame) -> pd.DataFrame:
    """200 real districts from the test split (features only)."""
    return test_split.drop(columns=[TARGET]).sample(200, random_state=0)


def test_richer_districts_get_higher_prices(bundle, test_split):
    """+2 (i.e. +$20k) median income raises the price for at least 95% of real districts.

    Not 100%: the model is a tree ensemble without monotone constraints. The rest are
    districts with incomes of about 10 or more, whose price already sits at the data set's
    500,001 censoring cap (no signal above it, so the trees are flat there), and rare
    combinations (e.g. income < 1 next to the bay) where a tree split on income interacts
    with location. On every test district, not a sample: 200 of them made the shares move
    by a district's 0.5 % (the fast-params model since the validation slice: 94.0 % raised,
    2.5 % lowered on the old sample of 200; 96.2 % and 1.8 % on all 4,128; the production
    model 97.9 % and 1.5 %, measured 2026-12-07).
    """
    districts = test_split.drop(columns=[TARGET])
    base = bundle.model.predict(districts)
    richer = bundle.model.predict(districts.assign(median_income=districts.median_income + 2))
    raised, lowered = np.mean(richer > base), np.mean(richer < base)
    assert raised >= 0.95, f"raised {raised:.1%}, lowered {lowered:.1%}"
    assert lowered <= 0.02, f"raised {raised:.1%}, lowered {lowered:.1%}"
    # Below the saturation zone, rises dominate even more clearly (98.1 % measured).
    modest = (districts.median_income < 8).to_numpy()
    assert np.mean(richer[modest] > base[modest]) >= 0.97


def test_category_spelling_does_not_change_the_price(bundle, districts):
    base = bundle.model.predict(districts)
    for spell in (str.lower, lambda s: f"  {s.title()}  ", lambda s: s.replace(" ", "   ")):
        messy = districts.assign(ocean_proximity=districts.ocean_proximity.map(spell))
        np.testing.assert_array_equal(bundle.model.predict(messy), base)


def test_missing_bedrooms_still_give_a_finite_price(bundle, districts):
    holes = districts.assign(total_bedrooms=np.nan)
    prices = bundle.model.predict(holes)
    assert np.isfinite(prices).all() and (prices > 0).all()
    # Imputation stays close to the known-value answer for most districts.
    ratio = prices / bundle.model.predict(districts)
    assert np.median(np.abs(ratio - 1)) < 0.05


def test_predictions_are_positive_and_sane(bundle, test_split):
    prices = bundle.model.predict(test_split.drop(columns=[TARGET]))
    assert np.isfinite(prices).all()
    assert prices.min() > 10_000 and prices.max() < 1_000_000
    # The model's median tracks the real median within 10%.
    assert abs(np.median(prices) / test_split[TARGET].median() - 1) < 0.10


def test_serving_bundle_equals_the_full_pipeline_on_the_whole_test_split(
    bundle, test_split, pipeline_repo
):
    """The bundle the pipeline's register stage wrote prices like the skops model."""
    X = test_split.drop(columns=[TARGET])
    fast = load_serving(pipeline_repo / "models")
    assert fast.sha256 == bundle.meta["serving_sha256"]
    numeric = X[list(NUMERIC_FEATURES)].to_numpy(float)
    cats = [fast.category_index(c) for c in X["ocean_proximity"]]
    assert np.isnan(numeric).any(), "the test split has districts without total_bedrooms"
    # Batches sum LightGBM's trees in blocks (cache-friendly): equal up to summation order.
    np.testing.assert_allclose(fast.predict(numeric, cats), bundle.model.predict(X), rtol=1e-12)
    one = fast.predict(numeric[:1], cats[:1])
    np.testing.assert_array_equal(one, bundle.model.predict(X.iloc[:1]))  # single row: exact


def test_bundle_metadata_matches_the_pipeline_reports(bundle, pipeline_repo):
    assert bundle.meta["metrics"] == read_json(pipeline_repo / "reports/register/metrics.json")
    contract = Contract.from_dict(read_json(pipeline_repo / "data/contract.json"))
    assert Contract.from_dict(bundle.meta["contract"]) == contract
    lock = (pipeline_repo / "dvc.lock").read_text()
    assert bundle.meta["data_md5"] in lock
