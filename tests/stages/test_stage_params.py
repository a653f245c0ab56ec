"""Every stage validates its own params.yaml section first: a bad value is refused before
the stage reads a file or writes one (the whole-file checks: tests/housing/params)."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest
import yaml

from housing.params.base import ParamsError

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))

# One bad value per stage, among those the issue found ending in a traceback, and the line.
BAD = {
    "download": ("timeout_s", -1, "download.timeout_s: must be a number > 0 and <= 3600, got -1"),
    "split": ("test_size", 1.5, "split.test_size: must be a number > 0 and < 1, got 1.5"),
    "preprocess": (
        "imputers",
        ["median", "magic"],
        "preprocess.imputers[1]: must be one of median, mean, knn, iterative, got 'magic'",
    ),
    "featurize": ("k_start", 3, "featurize.k_start: must be one of k_values"),
    "select": ("n_trials", 0, "select.n_trials: must be an integer >= 1 and <= 10000, got 0"),
    "sweep": ("engine", "nonexistent", "sweep.engine: must be one of optuna, wandb"),
    "register": ("cv_folds", 1, "register.cv_folds: must be an integer >= 2 and <= 20, got 1"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_stops_the_stage_before_any_work(tmp_path, monkeypatch, name):
    key, value, line = BAD[name]
    params = copy.deepcopy(DEFAULTS)
    params[name][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # no data here: a stage that read any would fail otherwise
    stage = importlib.import_module(f"stages.{name}")
    with pytest.raises(ParamsError) as caught:
        stage.main()
    assert str(caught.value).startswith(f"params.yaml {line}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_select_reads_the_sweep_declaration_but_not_its_run_settings(tmp_path, monkeypatch):
    """A bad sweep.n_trials is the sweep stage's to refuse; select only reads the search
    space, so its refusal names the declaration's keys alone."""
    params = copy.deepcopy(DEFAULTS)
    params["sweep"]["n_trials"] = -5
    params["sweep"]["resource_step"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    stage = importlib.import_module("stages.select")
    with pytest.raises(ParamsError) as caught:
        stage.main()
    assert caught.value.problems == [
        "params.yaml sweep.resource_step: must be an integer >= 1, got 0"
    ]
