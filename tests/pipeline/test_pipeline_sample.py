"""All seven stages from scratch on a 4,000-row stratified sample of the data set."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_support import (
    VENV_BIN,
    dvc,
    lock_outs,
    make_pipeline_repo,
    pipeline_env,
    promotion_keys,
    ran_stages,
    sample_params,
)
from sklearn.model_selection import train_test_split

from housing.io import read_json
from housing.summary import MAX_LINES, build

pytestmark = pytest.mark.slow

METRIC_KEYS = {
    "cv_rmse",
    "cv_rmse_folds",
    "cv_rmse_std",
    "interval_coverage",
    "interval_coverage_capped",
    "interval_level",
    "interval_log_high",
    "interval_log_low",
    "interval_mean_width",
    "interval_median_width",
    "interval_n_calibration",
    "interval_relative_width",
    "mae",
    "mape",
    "n_capped",
    "n_test",
    "r2",
    "rmse",
    "rmse_capped",
    "rmse_ci95_high",
    "rmse_ci95_low",
    "within_10pct",
    "wmape",
}


def stratified_sample(housing_df: pd.DataFrame, n: int, dest: Path) -> Path:
    strata = pd.cut(housing_df["median_income"], [0.0, 1.5, 3.0, 4.5, 6.0, np.inf], labels=False)
    sample, _ = train_test_split(housing_df, train_size=n, stratify=strata, random_state=0)
    sample.sort_index().to_csv(dest, index=False)
    return dest


@dataclass(frozen=True)
class SampleRun:
    repo: Path
    sample: Path
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def sample_run(housing_df, tmp_path_factory) -> SampleRun:
    tmp_path = tmp_path_factory.mktemp("sample")
    sample = stratified_sample(housing_df, 4_000, tmp_path / "sample.csv")
    repo = make_pipeline_repo(tmp_path / "repo", params=sample_params(sample))
    return SampleRun(repo, sample, dvc(repo, "repro", mirror=sample))


def test_full_pipeline_on_a_sample(sample_run, tmp_path):
    repo, proc = sample_run.repo, sample_run.proc
    sample = sample_run.sample
    assert ran_stages(proc.stdout) == [
        "download",
        "split",
        "preprocess",
        "featurize",
        "select",
        "sweep",
        "register",
    ]
    assert (repo / "data/raw/housing.csv").read_bytes() == sample.read_bytes()
    assert len(pd.read_parquet(repo / "data/split/test.parquet")) == 800
    assert (repo / "models/model.skops").is_file()
    assert lock_outs(repo)["models/model.skops"]

    metrics = read_json(repo / "reports/register/metrics.json")
    from housing.metrics import band_coverage_metric, price_bands

    y_test = pd.read_parquet(repo / "data/split/test.parquet")["median_house_value"]
    bands = {band_coverage_metric(label) for label, _ in price_bands(y_test.to_numpy(float))}
    assert len(bands) >= 5  # the interval's coverage per price band, for housing-monitor
    assert set(metrics) == METRIC_KEYS | bands
    assert metrics["n_test"] == 800
    assert metrics["rmse_ci95_low"] <= metrics["rmse"] <= metrics["rmse_ci95_high"]

    from housing.registry import CHAMPION, version_for_alias

    champion = version_for_alias(CHAMPION, tracking_uri=f"sqlite:///{repo}/mlflow.db")
    registration = read_json(repo / "reports/register/registration.json")
    assert registration["promoted"] is True
    assert champion.version == str(registration["version"]) == "1"
    assert champion.metrics["rmse"] == pytest.approx(metrics["rmse"])

    # Output a person reads: no third-party chatter in the log, and the summary of the run.
    log = proc.stdout + proc.stderr
    assert "[LightGBM]" not in log
    assert "Downloading artifacts" not in log
    (tmp_path / "repro.log").write_text(log)
    lines = build(tmp_path / "repro.log", root=repo)
    text = "\n".join(lines)
    assert len(lines) <= MAX_LINES, text
    assert "- Stages ran: download, split, preprocess, featurize, select, sweep, register" in text
    assert f"RMSE {metrics['rmse']:,.0f}" in text
    assert "- Registered: housing_price_model v1, promoted to champion" in text
    assert "- Champion: housing_price_model v1, promotion #1, signed, in champion/" in text
    assert "Missing" not in text

    # The training data's reference for drift travels in the serving bundle, listed in its
    # manifest, so the champion's signature covers it (docs/monitoring.md).
    manifest = read_json(repo / "models/serving/manifest.json")
    assert "reference.json" in manifest["files"]
    reference = read_json(repo / "champion/serving/reference.json")
    assert reference["rows"] == len(pd.read_parquet(repo / "data/split/train.parquet"))
    assert set(reference["categorical"]["ocean_proximity"]) >= {"INLAND", "NEAR BAY"}


def test_a_register_stage_killed_mid_promotion_is_completed_by_the_next_repro(sample_run):
    """Issue 23: SIGKILL the register stage of a real `dvc repro` right after it signed
    promotion #2 (somewhere in the event, the tags, the alias or the export: each is a few
    milliseconds), then `dvc repro` again. It completes, and the registry's alias, its last
    event and the exported, verified champion/ name the same version and promotion."""
    import os
    import signal

    from mlflow import MlflowClient

    from housing.registry import MODEL_NAME
    from housing.registry.history import read_events
    from housing.registry.lookup import alias_version
    from housing.signing import KeyRing, verify

    repo, sample = sample_run.repo, sample_run.sample
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # Another model (the sweep's folds and seeds; the register stage's own seed changes no
    # prediction of a deterministic booster, and a candidate with the champion's predictions
    # is held), let through the paired gate: promotion #2.
    params["sweep"]["seed"] = params["sweep"]["seed"] + 1
    params["register"]["gates"]["max_delta_rmse"] = 1_000_000
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    stage = subprocess.Popen(
        [str(VENV_BIN / "dvc"), "repro"],
        cwd=repo,
        env=pipeline_env(repo, sample),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in stage.stdout:
        seen.append(line)
        if "promotion #2 signed by key" in line:
            os.killpg(stage.pid, signal.SIGKILL)
            break
    stage.wait(60)
    assert stage.returncode == -signal.SIGKILL, "".join(seen[-40:])

    done = dvc(repo, "repro", mirror=sample)
    assert ran_stages(done.stdout) == ["register"]  # the sweep's outputs were recorded
    uri = f"sqlite:///{repo}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    events, _ = read_events(client, MODEL_NAME)
    champion = alias_version(client, MODEL_NAME, "champion")
    assert champion == events[-1].version != "1"
    result = verify(repo / "champion", KeyRing.from_files([promotion_keys()[1]]))
    assert result.signed and result.record.version == champion
    assert result.record.sequence == events[-1].seq
