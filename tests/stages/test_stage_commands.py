"""Bad input at the command level: ``python -m stages.<name>`` exits 1 with a readable report.

Each test runs the real entry point in a minimal directory (params.yaml plus the stage's
inputs), and checks that no output was written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from housing.contract import TARGET

REPO_ROOT = Path(__file__).resolve().parents[2]
SPLIT_OUTS = (
    "data/split/train.parquet",
    "data/split/validation.parquet",
    "data/split/test.parquet",
)
PREPROCESS_OUTS = (
    "data/contract.json",
    "reports/preprocess/imputation.json",
    "reports/preprocess/imputation.csv",
)


def stage_env(**env: str) -> dict[str, str]:
    """The environment of a stage run with the project's code and no data mirror."""
    return {
        **{k: v for k, v in os.environ.items() if k != "HOUSING_DATA_MIRROR"},
        "PYTHONPATH": str(REPO_ROOT),
        "OMP_NUM_THREADS": "1",
        **env,
    }


def run_stage(workdir: Path, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stages.<name>`` in ``workdir`` with the project's code."""
    return subprocess.run(
        [sys.executable, "-m", f"stages.{name}"],
        cwd=workdir,
        env=stage_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_lines(stderr: str) -> list[str]:
    """Lines logged at ERROR (progress bars redraw with carriage returns: split on those too)."""
    lines = [part for line in stderr.splitlines() for part in line.split("\r")]
    return [line for line in lines if " ERROR " in line]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy2(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def write_splits(workdir: Path, train: pd.DataFrame, test: pd.DataFrame) -> None:
    (workdir / "data/split").mkdir(parents=True)
    train.to_parquet(workdir / SPLIT_OUTS[0], index=False)
    test.to_parquet(workdir / SPLIT_OUTS[2], index=False)


def assert_nothing_written(workdir: Path, outs: tuple[str, ...]) -> None:
    for out in outs:
        assert not (workdir / out).exists(), out
    leftovers = [p for p in workdir.rglob("*.tmp")]
    assert leftovers == []


def test_download_refuses_a_corrupted_mirror(workdir, mirror_csv):
    corrupted = workdir / "corrupted.csv"
    data = bytearray(mirror_csv.read_bytes())
    data[1000] ^= 0x01
    corrupted.write_bytes(bytes(data))

    proc = run_stage(workdir, "download", HOUSING_DATA_MIRROR=str(corrupted))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert f"ERROR   housing.stage: sha256 mismatch for {corrupted}" in line
    assert line.endswith("the file is corrupt or not the expected data set")
    assert not (workdir / "data/raw/housing.csv").exists()
    assert list((workdir / "data/raw").iterdir()) == []  # no temporary file either

    # With info logs and progress bars off, stderr is exactly that one line.
    quiet = run_stage(
        workdir, "download", HOUSING_DATA_MIRROR=str(corrupted), LOG_LEVEL="ERROR", TQDM_DISABLE="1"
    )
    assert quiet.returncode == 1
    # The same single line; only its leading HH:MM:SS timestamp may differ between runs.
    [quiet_line] = quiet.stderr.splitlines()
    assert quiet_line.split(" ", 1)[1] == line.split(" ", 1)[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("missing", "missing column(s): households"),
        ("non_numeric", "total_rooms: expected numbers, found"),
        ("out_of_bins", "1 row(s) have median_income outside split.income_bins"),
    ],
)
def test_split_refuses_a_broken_csv(workdir, housing_df, breakage, expected):
    raw = housing_df.head(200).copy()
    if breakage == "missing":
        raw = raw.drop(columns=["households"])
    elif breakage == "non_numeric":
        raw["total_rooms"] = raw["total_rooms"].astype(str)
        raw.loc[3, "total_rooms"] = "many"
    else:
        raw.loc[5, "median_income"] = -2.0
    (workdir / "data/raw").mkdir(parents=True)
    raw.to_csv(workdir / "data/raw/housing.csv", index=False)

    proc = run_stage(workdir, "split")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(error_lines(proc.stderr)) == 1
    assert expected in proc.stderr
    assert_nothing_written(workdir, SPLIT_OUTS)


@pytest.mark.slow
def test_preprocess_reports_every_violation_of_the_train_split(workdir, housing_df):
    rows = housing_df.sample(400, random_state=0).reset_index(drop=True)
    train, test = rows.iloc[:300].copy(), rows.iloc[300:].reset_index(drop=True)
    train.loc[7, "population"] = -10.0  # counts are never negative, whatever the data says
    train.loc[2, "latitude"] = 80.0  # far outside California
    train.loc[4, ["total_rooms", "total_bedrooms"]] = (500.0, 600.0)
    write_splits(workdir, train, test)

    proc = run_stage(workdir, "preprocess")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert line.endswith("train split breaks the data contract (3 violation(s)):")
    detail = proc.stderr[proc.stderr.index(line) + len(line) :]
    report = [entry.strip() for entry in detail.strip().splitlines()]
    assert len(report) == 3 and all(entry.startswith("- ") for entry in report)
    assert report[0].startswith("- latitude: 1 row(s) outside [")
    assert report[0].endswith("(e.g. row 2: 80)")
    assert report[1].startswith("- population: 1 row(s) outside [1, ")
    assert report[1].endswith("(e.g. row 7: -10)")
    assert report[2].startswith("- total_bedrooms > total_rooms: 1 row(s) (e.g. row 4: 600 > 500)")
    assert_nothing_written(workdir, PREPROCESS_OUTS)


@pytest.mark.slow
def test_preprocess_never_reads_the_test_split(workdir, housing_df):
    """The test split and the validation slice are the register stage's alone: preprocess
    runs without either."""
    rows = housing_df.sample(300, random_state=0).reset_index(drop=True)
    (workdir / "data/split").mkdir(parents=True)
    rows.to_parquet(workdir / SPLIT_OUTS[0], index=False)

    proc = run_stage(workdir, "preprocess")
    assert proc.returncode == 0, proc.stderr
    for out in PREPROCESS_OUTS:
        assert (workdir / out).is_file(), out
    assert not (workdir / SPLIT_OUTS[1]).exists() and not (workdir / SPLIT_OUTS[2]).exists()


@pytest.mark.slow
def test_preprocess_refuses_a_train_split_missing_a_column(workdir, housing_df):
    rows = housing_df.sample(400, random_state=0).reset_index(drop=True)
    write_splits(workdir, rows.iloc[:300].drop(columns=["households", TARGET]), rows.iloc[300:])

    proc = run_stage(workdir, "preprocess")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(error_lines(proc.stderr)) == 1
    assert f"missing column(s): households, {TARGET}" in proc.stderr
    assert_nothing_written(workdir, PREPROCESS_OUTS)
