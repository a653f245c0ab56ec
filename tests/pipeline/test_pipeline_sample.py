"""All seven stages from scratch on a 4,000-row stratified sample of the data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_support import dvc, lock_outs, make_pipeline_repo, ran_stages, sample_params
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


def test_full_pipeline_on_a_sample(housing_df, tmp_path):
    sample = stratified_sample(housing_df, 4_000, tmp_path / "sample.csv")
    params = sample_params(sample)
    repo = make_pipeline_repo(tmp_path / "repo", params=params)

    proc = dvc(repo, "repro", mirror=sample)
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
    assert set(metrics) == METRIC_KEYS
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
