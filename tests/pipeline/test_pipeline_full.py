"""The whole pipeline with the committed parameters reproduces the committed dvc.lock."""

from __future__ import annotations

import pytest
from pipeline_support import (
    REPO_ROOT,
    dvc,
    lock_outs,
    make_pipeline_repo,
    promotion_keys,
    ran_stages,
)

from housing.io import read_json

# Registry version and run id: new on every registration by design (an uncached report).
NON_DETERMINISTIC = {"reports/register/registration.json"}


@pytest.mark.e2e
@pytest.mark.timeout(2400)  # ~6.5 min measured on 2 shared cores; the suite default is 900 s
def test_default_params_reproduce_the_committed_lock_and_meet_the_target(mirror_csv, tmp_path):
    committed = lock_outs(REPO_ROOT)
    repo = make_pipeline_repo(tmp_path / "repo", params=None)
    proc = dvc(repo, "repro", "--force", mirror=mirror_csv, timeout=3600)
    assert len(ran_stages(proc.stdout)) == 7

    rebuilt = lock_outs(repo)
    assert set(rebuilt) == set(committed)
    differ = {path for path in committed if committed[path] != rebuilt[path]}
    assert differ <= NON_DETERMINISTIC, sorted(differ - NON_DETERMINISTIC)

    metrics = read_json(repo / "reports/register/metrics.json")
    assert metrics["rmse"] <= 40_000, metrics
    assert metrics["r2"] >= 0.875, metrics

    # The first registration in a fresh registry is promoted, signed (the session's key, as
    # `make pipeline`'s development key) and exported to champion/, outside the lock.
    from housing.signing import KeyRing, verify

    registration = read_json(repo / "reports/register/registration.json")
    assert registration["promoted"] is True and registration["promotion_sequence"] == 1
    result = verify(
        repo / "champion",
        KeyRing.from_files([promotion_keys()[1]]),
        expected={"name": "housing_price_model", "version": registration["version"]},
    )
    assert result.signed and result.record.action == "promote"
    serving = result.record.sha256_of("serving/manifest.json")
    assert serving == read_json(repo / "models/model.json")["serving_sha256"]
    assert "champion" not in rebuilt and not any(p.startswith("champion") for p in rebuilt)
