"""The summary `make pipeline` ends with: parsed from dvc repro's log and the report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from housing import summary
from housing.summary import (
    FAILED,
    RAN,
    RESTORED,
    UNCHANGED,
    Champion,
    build,
    main,
    stage_statuses,
    stages_line,
)

STAGES = ["download", "split", "preprocess", "featurize", "select", "sweep", "register"]

# dvc repro's own lines, as `2>&1 | tee` writes them (stage logs and a progress bar between).
PARTIAL_RUN = """\
+ .venv/bin/dvc repro
Running stage 'download':
> python -m stages.download
housing.csv:   0%|          | 0.00/1.42M [00:00<?, ?B/s]\r                    \r00:44:30 INFO x
Stage 'split' didn't change, skipping
Stage 'preprocess' is cached - skipping run, checking out outputs
Stage 'featurize' didn't change, skipping
Stage 'select' didn't change, skipping
Stage 'sweep' didn't change, skipping
Running stage 'register':
> python -m stages.register
Updating lock file 'dvc.lock'
Use `dvc push` to send your updates to remote storage.
"""

FAILED_RUN = """\
Running stage 'download':
> python -m stages.download
Stage 'split' didn't change, skipping
Running stage 'sweep':
> python -m stages.sweep
01:02:03 ERROR   housing.stage: params.yaml sweep.n_trials: must be an integer >= 1, got -5
ERROR: failed to reproduce 'sweep': failed to run: python -m stages.sweep, exited with 1
"""

METRICS = {
    "cv_rmse": 41557.340362,
    "cv_rmse_folds": [40297.66, 43844.65, 38869.93, 42040.91, 42733.56],
    "cv_rmse_std": 1769.635294,
    "interval_coverage": 0.900436,
    "interval_level": 0.9,
    "n_test": 4128,
    "r2": 0.88522,
    "rmse": 38677.410798,
    "rmse_ci95_high": 40605.872878,
    "rmse_ci95_low": 36771.689315,
}
REGISTRATION = {
    "name": "housing_price_model",
    "version": "3",
    "promoted": False,
    "decision": "Kept v2: the candidate's RMSE is not lower by the margin.",
}
RECORD = {"name": "housing_price_model", "version": "2", "sequence": 2, "action": "promote"}


def write_project(root: Path, *, signed: bool = True) -> Path:
    """A project tree with the files the summary reads, as a register run leaves them."""
    (root / "dvc.yaml").write_text(
        "stages:\n" + "".join(f"  {name}:\n    cmd: python -m stages.{name}\n" for name in STAGES)
    )
    (root / "reports/register").mkdir(parents=True)
    (root / "reports/register/metrics.json").write_text(json.dumps(METRICS))
    (root / "reports/register/registration.json").write_text(json.dumps(REGISTRATION))
    (root / "champion").mkdir()
    (root / "champion/promotion.json").write_text(json.dumps(RECORD))
    if signed:
        (root / "champion/model.sig").write_text("{}")
    (root / "reports/repro.log").write_text(PARTIAL_RUN)
    return root / "reports/repro.log"


def test_statuses_follow_dvcs_own_lines():
    assert stage_statuses(PARTIAL_RUN) == {
        "download": RAN,
        "split": UNCHANGED,
        "preprocess": RESTORED,
        "featurize": UNCHANGED,
        "select": UNCHANGED,
        "sweep": UNCHANGED,
        "register": RAN,
    }


def test_a_failed_stage_is_failed_and_the_stages_after_it_not_run():
    statuses = stage_statuses(FAILED_RUN)
    assert statuses == {"download": RAN, "split": UNCHANGED, "sweep": FAILED}
    line = stages_line(STAGES, statuses)
    assert line == (
        "- Stages FAILED: sweep; ran: download; unchanged (skipped): split; "
        "not run: preprocess, featurize, select, register"
    )


def test_dvc_names_several_failed_stages_in_one_error():
    log = "ERROR: failed to reproduce stages: 'select', 'sweep' and 'register': boom"
    assert stage_statuses(log) == {"select": FAILED, "sweep": FAILED, "register": FAILED}


def test_an_empty_log_says_no_stage_started():
    assert "names none" in stages_line(STAGES, stage_statuses(""))


def test_summary_of_a_run_names_results_champion_and_next_commands(tmp_path):
    log = write_project(tmp_path)
    lines = build(log, root=tmp_path)

    assert len(lines) <= summary.MAX_LINES
    text = "\n".join(lines)
    assert lines[1] == (
        "- Stages ran: download, register; restored from the run cache: preprocess; "
        "unchanged (skipped): split, featurize, select, sweep"
    )
    assert "RMSE 38,677 (95 % CI 36,772-40,606), R² 0.885" in text
    assert "Honest CV RMSE 41,557 ± 1,770 (5 folds of train)" in text
    assert "90 % interval coverage on test 90.0 %" in text
    assert (
        "Registered: housing_price_model v3, held as challenger: Kept v2: the candidate's "
        "RMSE is not lower by the margin." in text
    )
    assert "Champion: housing_price_model v2, promotion #2, signed, in champion/" in text
    assert "reports/register/metrics.json" in text
    for command, _ in summary.NEXT_COMMANDS:
        assert f"`{command}`" in text
    assert "Missing" not in text


def test_an_unsigned_champion_is_said_so(tmp_path):
    log = write_project(tmp_path, signed=False)
    assert "v2, promotion #2, UNSIGNED (no signing key)" in "\n".join(build(log, root=tmp_path))


def test_a_register_that_did_not_run_is_not_reported_as_this_runs(tmp_path):
    log = write_project(tmp_path)
    log.write_text(
        PARTIAL_RUN.replace("Running stage 'register'", "Stage 'register' didn't change, skipping")
    )
    text = "\n".join(build(log, root=tmp_path))
    assert "Last registration (not this run's): housing_price_model v3" in text
    assert "- Test split: RMSE 38,677" in text


def test_missing_files_are_named_not_fatal(tmp_path):
    """A failed stage leaves no metrics, no registration and no champion behind."""
    log = tmp_path / "repro.log"
    log.write_text(FAILED_RUN)
    (tmp_path / "dvc.yaml").write_text("stages:\n  download:\n    cmd: x\n")
    lines = build(log, root=tmp_path)

    assert len(lines) <= summary.MAX_LINES
    text = "\n".join(lines)
    assert "Stages FAILED: sweep" in text
    assert (
        "- Missing or unreadable: reports/register/metrics.json, "
        "reports/register/registration.json" in text
    )
    assert "Champion: none in champion/" in text
    assert "`make serve`" in text


def test_metrics_a_failed_register_left_behind_are_marked_as_earlier(tmp_path):
    log = write_project(tmp_path)
    log.write_text(
        FAILED_RUN.replace("'sweep'", "'register'").replace("stages.sweep", "stages.register")
    )
    text = "\n".join(build(log, root=tmp_path))
    assert "Stages FAILED: register" in text
    assert "- Test split (an earlier run: register did not finish): RMSE 38,677" in text
    assert "Last registration (not this run's): housing_price_model v3" in text


def test_a_missing_log_and_broken_reports_are_named(tmp_path):
    (tmp_path / "reports/register").mkdir(parents=True)
    (tmp_path / "reports/register/metrics.json").write_text(json.dumps({"rmse": 1.0}))
    (tmp_path / "reports/register/registration.json").write_text("{not json")
    text = "\n".join(build(tmp_path / "repro.log", root=tmp_path))

    assert str(tmp_path / "repro.log") in text
    assert "dvc.yaml" in text
    assert "reports/register/metrics.json (no rmse_ci95_low" in text
    assert "reports/register/registration.json (unreadable)" in text


@pytest.mark.parametrize(
    ("champion", "expected"),
    [
        (Champion("m", "7", 9, True), "- Champion: m v7, promotion #9, signed, in champion/"),
        (
            Champion("m", "7", None, False),
            "- Champion: m v7, UNSIGNED (no signing key), in champion/",
        ),
    ],
)
def test_champion_line(champion, expected):
    assert summary.champion_line(champion) == expected


def test_main_prints_the_summary_and_writes_it_atomically(tmp_path, monkeypatch, capsys):
    write_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "reports/summary.md"
    main(["--repro-log", "reports/repro.log", "--out", str(out)])

    printed = capsys.readouterr().out
    assert printed == out.read_text()
    assert printed.startswith("## Pipeline summary (full log: reports/repro.log)\n")
    assert len(printed.splitlines()) <= summary.MAX_LINES
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "register",
        "repro.log",
        "summary.md",
    ]  # no temp file left beside it
