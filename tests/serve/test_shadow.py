"""The shadow challenger (serve/shadow.py): it prices what the champion priced, off the
request path, records the agreement, and stays idle without a challenger."""

from __future__ import annotations

import math

import numpy as np
import pytest
from serve_support import root_conftest

from housing.contract import RAW_FEATURES
from housing.signing.keys import KeyRing
from serve.feature_log import batch_now
from serve.metrics import ServeMetrics
from serve.shadow import Shadow
from serve.sources.base import SourceError
from serve.sources.local import LocalSource


def _source(directory) -> LocalSource:
    return LocalSource(
        directory, model_name="housing_price_model", context_limit=0, keys=KeyRing(())
    )


@pytest.fixture(scope="module")
def challenger_dir(tmp_path_factory, bundle_v2):
    dest = tmp_path_factory.mktemp("challenger") / "champion"
    return root_conftest().write_champion(bundle_v2, dest, version="2", sequence=2)


def _batches(champion, rows, size):
    out = []
    for start in range(0, len(rows), size):
        part = [dict(r) for r in rows[start : start + size]]
        for r in part:
            if isinstance(r["total_bedrooms"], float) and math.isnan(r["total_bedrooms"]):
                r["total_bedrooms"] = None
        from serve.schemas import InstanceCreate

        instances = [InstanceCreate(**r) for r in part]
        numeric, cats = champion.validator.to_arrays(instances, max_batch=1000)
        prices, low, high = champion.predict_interval(numeric, cats)
        out.append(
            batch_now(
                instances,
                prices.round(2).tolist(),
                low.round(2).tolist(),
                high.round(2).tolist(),
                model_name="housing_price_model",
                model_version=champion.identity.version,
                request_id=f"r{start}",
                numeric=numeric,
                categories=cats,
                model=champion,
            )
        )
    return out


def test_the_shadow_prices_every_instance_and_records_the_agreement(
    champion_dir, challenger_dir, small_train
):
    champion = _source(champion_dir).load()
    metrics = ServeMetrics()
    shadow = Shadow(_source(challenger_dir), metrics, interval_s=0)
    shadow.refresh()
    assert shadow.snapshot()["loaded"] and shadow.snapshot()["challenger_version"] == "2"

    rows = small_train[list(RAW_FEATURES)].head(250).to_dict("records")
    batches = _batches(champion, rows, 40)
    extras = shadow(batches)
    assert len(extras) == len(batches) and all(e["shadow_version"] == "2" for e in extras)

    challenger = shadow.model
    numeric = np.vstack([b.numeric for b in batches])
    cats = [c for b in batches for c in b.categories]
    expected = challenger.predict(numeric, cats)
    mine = np.array([p for e in extras for p in e["shadow_price"]])
    assert mine == pytest.approx(expected.round(2), abs=0.006)
    champion_prices = np.array([p for b in batches for p in b.prices])
    low = np.array([p for b in batches for p in b.lows])
    high = np.array([p for b in batches for p in b.highs])
    snap = shadow.snapshot()
    assert snap["instances"] == 250
    assert snap["mean_abs_diff"] == pytest.approx(np.mean(np.abs(expected - champion_prices)))
    inside = np.mean((expected >= low) & (expected <= high))
    assert snap["inside_interval_share"] == pytest.approx(inside)
    assert snap["mean_abs_diff"] > 0 and 0.5 < snap["inside_interval_share"] <= 1
    text = metrics.render().decode()
    assert "shadow_scored_total 250.0" in text and "shadow_loaded 1.0" in text
    assert 'shadow_info{signed="false",version="2"} 1.0' in text


def test_without_a_challenger_the_shadow_is_idle_and_says_why(tmp_path, champion_dir, small_train):
    metrics = ServeMetrics()
    shadow = Shadow(_source(tmp_path / "nothing"), metrics, interval_s=0)
    shadow.refresh()
    snap = shadow.snapshot()
    assert not snap["loaded"] and snap["status"].startswith("idle: no champion")
    champion = _source(champion_dir).load()
    rows = small_train[list(RAW_FEATURES)].head(5).to_dict("records")
    assert shadow(_batches(champion, rows, 5)) is None
    assert "shadow_loaded 0.0" in metrics.render().decode()


def test_the_champion_itself_is_not_shadowed(champion_dir, small_train):
    """After a promotion the challenger alias may still name the champion's version."""
    champion = _source(champion_dir).load()
    shadow = Shadow(_source(champion_dir), ServeMetrics(), interval_s=0)
    shadow.refresh()
    rows = small_train[list(RAW_FEATURES)].head(5).to_dict("records")
    assert shadow(_batches(champion, rows, 5)) is None
    assert shadow.snapshot()["instances"] == 0


def test_a_source_error_is_not_an_exception_for_the_api():
    class Failing:
        def fingerprint(self):
            raise SourceError("the registry is down")

    shadow = Shadow(Failing(), ServeMetrics(), interval_s=0)
    shadow.refresh()
    assert shadow.snapshot()["status"] == "idle: the registry is down"
