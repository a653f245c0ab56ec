"""``housing-monitor``: a window of the feature log against the champion's reference, the
realised error of labelled prices, its outputs and its exit status (0, 1 alert, 2 error)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from housing.contract import RAW_FEATURES, TARGET
from housing.monitor.cli import app
from housing.monitor.log import LOG_FILE, log_files, read_window

REPO_ROOT = Path(__file__).resolve().parents[3]


def _record(row: dict, at: str, price: float, version: str = "1") -> dict:
    features = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    return {
        "at": at,
        "request_id": "r",
        "model": "housing_price_model",
        "version": version,
        "price": price,
        "low": price * 0.8,
        "high": price * 1.25,
        "features": features,
    }


def write_log(directory: Path, frame: pd.DataFrame, at: str = "2026-12-07T10:00:00.000+00:00"):
    directory.mkdir(parents=True, exist_ok=True)
    rows = frame[list(RAW_FEATURES)].to_dict("records")
    prices = frame[TARGET].to_numpy(float)
    with (directory / LOG_FILE).open("a") as fh:
        for row, price in zip(rows, prices, strict=True):
            fh.write(json.dumps(_record(row, at, float(price))) + "\n")
    return directory


@pytest.fixture(scope="module")
def unseen(housing_df, small_train):
    """Districts the session's champion was not trained on, from the same population."""
    rest = housing_df.drop(index=housing_df.index[housing_df.index.isin(small_train.index)])
    return rest.sample(3000, random_state=3).reset_index(drop=True)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--params", str(REPO_ROOT / "params.yaml")])
    return result.exit_code, result.output


def test_the_same_population_exits_0_with_both_outputs(champion_dir, unseen, tmp_path):
    log = write_log(tmp_path / "log", unseen)
    code, output = run(
        "--log-dir", str(log), "--champion", str(champion_dir), "--out", str(tmp_path / "o")
    )
    assert code == 0, output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["rows"] == 3000 and summary["alerts"] == []
    assert summary["thresholds"]["psi"] == 0.1  # params.yaml's monitor section
    assert "No alert." in (tmp_path / "o" / "report.html").read_text()


def test_a_shifted_window_exits_1_naming_the_feature(champion_dir, unseen, tmp_path):
    shifted = unseen.copy()
    shifted["housing_median_age"] = shifted["housing_median_age"] / 2
    log = write_log(tmp_path / "log", shifted)
    code, output = run(
        "--log-dir", str(log), "--champion", str(champion_dir), "--out", str(tmp_path / "o")
    )
    assert code == 1
    assert "alert: housing_median_age drifted" in output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["drift"]["flagged"] == ["housing_median_age"]
    assert "drifted" in (tmp_path / "o" / "report.html").read_text()


def test_the_window_selects_by_time(champion_dir, unseen, tmp_path):
    log = tmp_path / "log"
    write_log(log, unseen, at="2026-12-07T09:00:00.000+00:00")
    shifted = unseen.copy()
    shifted["median_income"] *= 2
    write_log(log, shifted, at="2026-12-07T11:00:00.000+00:00")
    common = ("--log-dir", str(log), "--champion", str(champion_dir), "--out", str(tmp_path / "o"))
    assert run(*common, "--until", "2026-12-07T10:00Z")[0] == 0
    assert run(*common, "--since", "2026-12-07T10:00:00")[0] == 1  # no zone: UTC
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["rows"] == 3000


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--log-dir", "/nonexistent/log"), "no feature log directory"),
        (("--since", "yesterday"), "neither an ISO time"),
        (("--reference", "/nonexistent/reference.json"), "no drift reference"),
        (("--labels", "/nonexistent/truth.csv"), "truth.csv"),
    ],
)
def test_a_failed_check_exits_2_in_one_line(champion_dir, unseen, tmp_path, args, says):
    log = write_log(tmp_path / "log", unseen.iloc[:10])
    base = {"--log-dir": str(log), "--champion": str(champion_dir), "--out": str(tmp_path / "o")}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    code, output = run(*[x for kv in base.items() for x in kv])
    assert code == 2
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and says in lines[0], output
    assert not (tmp_path / "o" / "summary.json").exists()  # nothing half-written


def test_a_bad_monitor_parameter_exits_2_naming_it(champion_dir, unseen, tmp_path):
    params = tmp_path / "params.yaml"
    text = (REPO_ROOT / "params.yaml").read_text().replace("psi_threshold: 0.1", "psi_threshold: 0")
    params.write_text(text)
    log = write_log(tmp_path / "log", unseen.iloc[:10])
    result = CliRunner().invoke(
        app, ["--log-dir", str(log), "--champion", str(champion_dir), "--params", str(params)]
    )
    assert result.exit_code == 2 and "monitor.psi_threshold" in result.output


def test_labels_with_served_prices_report_realised_error(champion_dir, unseen, tmp_path):
    """The app's download: true values beside the served prices and interval."""
    truth = unseen.copy()
    rng = np.random.default_rng(0)
    truth["predicted_price"] = truth[TARGET] * rng.uniform(0.9, 1.1, len(truth))
    truth["interval_low"] = truth["predicted_price"] * 0.8
    truth["interval_high"] = truth["predicted_price"] * 1.25
    path = tmp_path / "truth.csv"
    truth.to_csv(path, index=False)
    code, output = run(
        "--labels",
        str(path),
        "--champion",
        str(champion_dir),
        "--log-dir",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0, output
    realised = json.loads((tmp_path / "o" / "summary.json").read_text())["realised"]
    assert realised["n"] == 3000 and realised["source"] == "the file's prices"
    err = truth["predicted_price"] - truth[TARGET]
    assert realised["rmse"] == pytest.approx(float(np.sqrt(np.mean(err**2))))
    assert realised["coverage"] == 1.0  # +-10 % always inside -20 %/+25 %
    assert "Realised error" in (tmp_path / "o" / "report.html").read_text()

    # Prices 40 % low in the top band: its coverage collapses, an alert.
    top = truth[TARGET] >= 300_000
    truth.loc[top, ["predicted_price", "interval_low", "interval_high"]] *= 0.6
    truth.to_csv(path, index=False)
    code, output = run(
        "--labels",
        str(path),
        "--champion",
        str(champion_dir),
        "--log-dir",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 1
    assert "realised coverage in 300k-400k" in output


def test_labels_are_joined_to_the_feature_log(champion_dir, unseen, tmp_path):
    log = write_log(tmp_path / "log", unseen)
    truth = unseen[[*RAW_FEATURES, TARGET]].iloc[:1000].copy()
    truth[TARGET] = truth[TARGET] * 1.02  # the log priced the old truth: 2 % off
    path = tmp_path / "truth.csv"
    truth.to_csv(path, index=False)
    code, output = run(
        "--labels",
        str(path),
        "--log-dir",
        str(log),
        "--champion",
        str(champion_dir),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0, output
    realised = json.loads((tmp_path / "o" / "summary.json").read_text())["realised"]
    assert realised["source"] == "the feature log" and realised["n"] == 1000
    assert realised["unmatched"] == 0
    assert realised["mae"] == pytest.approx(float((truth[TARGET] / 1.02 * 0.02).mean()), rel=1e-6)


def test_rotated_files_are_read_oldest_first_and_torn_lines_skipped(tmp_path):
    (tmp_path / f"{LOG_FILE}.2").write_text(
        json.dumps({"at": "2026-12-07T01:00:00+00:00", "features": {}}) + "\n"
    )
    (tmp_path / f"{LOG_FILE}.1").write_text('{"at": "2026-12-07T02:00:00+00:00", "feat')
    (tmp_path / LOG_FILE).write_text(
        json.dumps({"at": "2026-12-07T03:00:00+00:00", "features": {}}) + "\n"
    )
    assert [p.name for p in log_files(tmp_path)] == [f"{LOG_FILE}.2", f"{LOG_FILE}.1", LOG_FILE]
    window = read_window(tmp_path)
    assert [r["at"][11:13] for r in window.records] == ["01", "03"] and window.unreadable == 1


def test_the_installed_command_exits_1_and_logs_to_wandb_offline(champion_dir, unseen, tmp_path):
    """The console script as a scheduler runs it; with a key set, a W&B run is logged
    (offline mode here: W&B's cloud cannot be reached from this machine)."""
    shifted = unseen.copy()
    shifted["median_income"] *= 2
    log = write_log(tmp_path / "log", shifted)
    env = {
        "WANDB_API_KEY": "x" * 40,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "housing-monitor"),
            "--log-dir",
            str(log),
            "--champion",
            str(champion_dir),
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "alert: median_income drifted" in done.stderr
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), done.stderr


def test_a_band_is_judged_against_the_champions_test_coverage_in_it():
    from housing.monitor.realised import realised_error

    y = np.array([50_000.0] * 60 + [150_000.0] * 60 + [450_000.0] * 10)
    inside = np.r_[np.ones(45), np.zeros(15)].astype(bool)  # 75 % covered in the first bands
    price = y.copy()
    low = np.where(np.r_[inside, inside, np.ones(10, bool)], y * 0.9, y * 1.1)
    high = y * 1.2
    report = realised_error(
        y,
        price,
        low,
        high,
        level=0.9,
        test_metrics={"interval_coverage_0k_100k": 0.78, "rmse": 40_000.0},
        tolerance=0.05,
        min_band=50,
    )
    bands = {b["band"]: b for b in report["bands"]}
    assert bands["0k-100k"]["floor"] == pytest.approx(0.73) and not bands["0k-100k"]["flagged"]
    assert bands["100k-200k"]["floor"] == pytest.approx(0.85) and bands["100k-200k"]["flagged"]
    assert not bands["400k-500k"]["judged"]  # 10 labels: too few to judge
    assert report["flagged"] == ["100k-200k"] and report["test"]["rmse"] == 40_000.0
