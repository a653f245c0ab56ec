"""params.yaml's schema: every key refused in one line naming it, when of the wrong type or
out of range; the rules across sections; the committed JSON Schema in sync with the models."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from housing.params.base import ParamsError
from housing.params.cli import render_schema
from housing.params.file import SCHEMA_FILE, check

REPO = Path(__file__).resolve().parents[3]
DEFAULTS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
# Mappings whose own keys are free (W&B syntax, families): treated as one value here, with
# cases of their own below.
OPAQUE = {"sweep.config", "sweep.spaces"}

# An out-of-range value for every key, and the key the refusal names (a path below the key
# when the problem is an element of it).
OUT_OF_RANGE: dict[str, tuple[Any, str]] = {
    "download.url": ("ftp://example.org/housing.csv", "download.url"),
    "download.sha256": ("8A37", "download.sha256"),
    "download.timeout_s": (-1, "download.timeout_s"),
    "split.test_size": (1.5, "split.test_size"),
    "split.validation_size": (0, "split.validation_size"),
    "split.seed": (-1, "split.seed"),
    "split.income_bins": ([0.0, 3.0, 1.5], "split.income_bins"),
    "preprocess.contract_margin": (-0.1, "preprocess.contract_margin"),
    "preprocess.region_margin_km": (-2.0, "preprocess.region_margin_km"),
    "preprocess.imputers": (["median", "magic"], "preprocess.imputers[1]"),
    "preprocess.cv_folds": (1, "preprocess.cv_folds"),
    "preprocess.seed": (-1, "preprocess.seed"),
    "featurize.cv_folds": (1, "featurize.cv_folds"),
    "featurize.seed": (2**32, "featurize.seed"),
    "featurize.gamma": (0.0, "featurize.gamma"),
    "featurize.k_values": ([8, 4], "featurize.k_values"),
    "featurize.k_start": (3, "featurize.k_start"),
    "featurize.rotations": ([15, 90], "featurize.rotations"),
    "featurize.neighbor_values": ([0, 4], "featurize.neighbor_values"),
    "featurize.neighbor_scales": ([64, 16], "featurize.neighbor_scales"),
    "featurize.neighbor_folds": (1, "featurize.neighbor_folds"),
    "select.families": (["linear", "xgboost"], "select.families[1]"),
    "select.n_trials": (0, "select.n_trials"),
    "select.cv_folds": (1, "select.cv_folds"),
    "select.seed": (-1, "select.seed"),
    "sweep.engine": ("nonexistent", "sweep.engine"),
    "sweep.n_trials": (-5, "sweep.n_trials"),
    "sweep.cv_folds": (1, "sweep.cv_folds"),
    "sweep.seed": (-1, "sweep.seed"),
    "sweep.resource_step": (0, "sweep.resource_step"),
    "sweep.wandb_project": ("", "sweep.wandb_project"),
    # Several local workers share a journal file; a database URL is the stage's to parse
    # (sweep.storage's scheme and password checks load SQLAlchemy: stages/sweep.py).
    "sweep.storage": ("", "sweep.workers"),  # with workers: 0, below
    "sweep.workers": (-1, "sweep.workers"),
    "sweep.timeout_s": (0, "sweep.timeout_s"),
    "sweep.heartbeat_s": (0, "sweep.heartbeat_s"),
    "sweep.grace_s": (5, "sweep.grace_s"),
    "sweep.max_retry": (-1, "sweep.max_retry"),
    "sweep.bagging.sizes": ([2, 3], "sweep.bagging.sizes"),
    "sweep.bagging.max_rounds": (200, "sweep.bagging.max_rounds"),
    "sweep.config": ({"method": "nope"}, "sweep.config.method"),
    "sweep.spaces": (
        {"lightgbm": {"num_leaves": {"distribution": "int_uniform", "min": 50, "max": 8}}},
        "sweep.spaces.lightgbm.num_leaves",
    ),
    "register.model_name": ("bad name!", "register.model_name"),
    "register.experiment": ("", "register.experiment"),
    "register.bootstrap_resamples": (10, "register.bootstrap_resamples"),
    "register.seed": (-1, "register.seed"),
    "register.cv_folds": (1, "register.cv_folds"),
    "register.cv_seed": (-1, "register.cv_seed"),
    "register.interval_level": (1.0, "register.interval_level"),
    "register.gates.min_r2": (1.5, "register.gates.min_r2"),
    "register.gates.max_rmse": (0, "register.gates.max_rmse"),
    "register.gates.max_delta_rmse": (-1, "register.gates.max_delta_rmse"),
    "monitor.psi_threshold": (0, "monitor.psi_threshold"),
    "monitor.min_instances": (10, "monitor.min_instances"),
    "monitor.coverage_tolerance": (1.0, "monitor.coverage_tolerance"),
    "monitor.min_band_instances": (0, "monitor.min_band_instances"),
}
# Changed alongside a key above, so that only that key is wrong.
ALONGSIDE = {"sweep.storage": {"sweep.workers": 0}}


def leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in OPAQUE:
            out.update(leaves(value, f"{path}."))
        else:
            out[path] = value
    return out


KEYS = leaves(DEFAULTS)


def changed(**values: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULTS)
    for path, value in values.items():
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        if path in OPAQUE and isinstance(value, dict):  # merged: the other entries stay
            node[last] = {**node[last], **value}
        else:
            node[last] = value
    return data


def refusals(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ParamsError) as caught:
        check(path)
    return [line.removeprefix(f"{path} ") for line in caught.value.problems]


def wrong_type(value: Any) -> Any:
    """A value of another type than ``value``'s, as a user would mistype it."""
    if isinstance(value, bool | int | float | list | dict):
        return "abc"
    return 123


def test_the_committed_file_is_valid():
    checked = check(REPO / "params.yaml")
    assert checked.sweep.n_trials == DEFAULTS["sweep"]["n_trials"]


def test_every_key_has_an_out_of_range_case():
    assert set(OUT_OF_RANGE) == set(KEYS)


@pytest.mark.parametrize("key", sorted(KEYS))
def test_a_wrong_type_is_refused_in_one_line_naming_the_key(tmp_path, key):
    bad = wrong_type(KEYS[key])
    lines = refusals(tmp_path, changed(**{key: bad}))
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{key}: must be "), lines[0]
    assert lines[0].endswith(f"got {bad!r}"), lines[0]


@pytest.mark.parametrize("key", sorted(OUT_OF_RANGE))
def test_an_out_of_range_value_is_refused_in_one_line_naming_the_key(tmp_path, key):
    value, named = OUT_OF_RANGE[key]
    lines = refusals(tmp_path, changed(**{key: value, **ALONGSIDE.get(key, {})}))
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{named}: "), lines[0]
    assert "\n" not in lines[0]


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ({"split.test_size": "abc"}, "split.test_size: must be a number > 0 and < 1, got 'abc'"),
        ({"sweep.n_trials": -5}, "sweep.n_trials: must be an integer >= 1 and <= 100000, got -5"),
        (
            {"preprocess.imputers": ["median", "magic"]},
            "preprocess.imputers[1]: must be one of median, mean, knn, iterative, got 'magic'",
        ),
        ({"sweep.engine": "nonexistent"}, "sweep.engine: must be one of optuna, wandb, got "
         "'nonexistent'"),
        ({"sweep.typo": 3}, "sweep.typo: unknown key (allowed: bagging, config, cv_folds, "
         "engine, grace_s, heartbeat_s, max_retry, n_trials, resource_step, seed, spaces, "
         "storage, timeout_s, wandb_project, workers)"),
        ({"split.seed": True}, "split.seed: must be an integer >= 0 and <= 4294967295, got True"),
    ],
)  # fmt: skip
def test_messages_read_as_the_issue_asks(tmp_path, values, line):
    assert refusals(tmp_path, changed(**values)) == [line]


@pytest.mark.parametrize(
    ("values", "start"),
    [
        ({"select.seed": 7, "sweep.seed": 7}, "select.seed: must differ from sweep.seed (7)"),
        ({"register.cv_seed": 42}, "register.cv_seed: must differ from preprocess.seed (42)"),
        ({"sweep.seed": 2027}, "register.cv_seed: must differ from sweep.seed (2027)"),
        (
            {"select.families": ["linear", "random_forest"], "sweep.spaces": {}},
            None,  # the spaces of the defaults all exist: replaced below
        ),
    ],
)
def test_rules_across_sections(tmp_path, values, start):
    data = changed(**{k: v for k, v in values.items() if k != "sweep.spaces"})
    if start is None:
        del data["sweep"]["spaces"]["random_forest"]
        start = "select.families: random_forest has no search space in sweep.spaces"
    lines = refusals(tmp_path, data)
    assert len(lines) == 1 and lines[0].startswith(start), lines


def test_problems_of_several_sections_are_reported_together(tmp_path):
    lines = refusals(tmp_path, changed(**{"split.test_size": 2, "sweep.n_trials": 0}))
    assert [line.split(":")[0] for line in lines] == ["split.test_size", "sweep.n_trials"]


def test_an_unknown_or_missing_section_is_named(tmp_path):
    data = changed()
    data["featurise"] = data.pop("featurize")
    assert refusals(tmp_path, data) == [
        "featurise: unknown section (allowed: download, split, preprocess, featurize, select, "
        "sweep, register, monitor)",
        "featurize: missing section",
    ]


def test_the_committed_json_schema_is_the_models():
    """Regenerate with: housing-params schema --out params.schema.json"""
    assert (REPO / SCHEMA_FILE).read_text(encoding="utf-8") == render_schema()


def test_params_yaml_points_editors_at_the_schema():
    first = (REPO / "params.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema={SCHEMA_FILE}"


def test_the_check_command_is_one_line_and_exit_1_without_a_traceback(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(changed(**{"sweep.n_trials": -5})), encoding="utf-8")
    command = [str(Path(sys.executable).parent / "housing-params"), "check", "--file", str(bad)]
    env = {**os.environ, "PYTHONWARNINGS": "error"}  # a warning would be a line too
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.rstrip().endswith(
        f"{bad} sweep.n_trials: must be an integer >= 1 and <= 100000, got -5"
    )
    good = subprocess.run(
        [*command[:-1], str(REPO / "params.yaml")], capture_output=True, text=True, timeout=60
    )
    assert good.returncode == 0, good.stderr
