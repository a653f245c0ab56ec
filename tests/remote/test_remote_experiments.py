"""The experiment workflows of docs/experiments.md, run for real on a pipeline copy.

`dvc exp run --set-param` re-runs exactly the affected stages; `exp show`/`exp diff` list the
params, the validation score, the sweep's CV score and the test metrics; the experiment with
the best validation score (never the best test RMSE, nor the sweep's best CV, which more
trials lower by construction) is chosen with the documented `exp show` command, applied,
committed and pushed; a colleague's clone pulls it exactly, and the pushed run cache spares
them any recompute. Several experiments run one after another with `--temp` (DVC's queue
is not tested, nor taught: docs/testing.md says why).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from make_serve_support import running_make_serve, user_env
from pipeline_support import copy_workspace, dvc, git, lock_outs, promotion_keys, ran_stages
from readme_support import readme_argv
from remote_support import (
    DVC_ENV,
    clone,
    create_bucket,
    head,
    md5_file,
    out_md5_matches,
    point_remote,
)

pytestmark = pytest.mark.slow

DOWNSTREAM_OF_FEATURIZE = ["select", "sweep", "register"]
FEATURES = "reports/featurize/features.json"
METRICS = "reports/register/metrics.json"  # test metrics: the final report, never a choice
SWEEP = "reports/sweep/summary.json"  # its best_value: the sweep's best CV RMSE on train
VALIDATION = "reports/register/validation.json"  # the experiments' honest score
# docs/experiments.md's choosing command: the validation score (and the sweep's CV beside
# it) and the knobs, lowest validation RMSE first, no test metric.
CHOOSE = (
    "exp",
    "show",
    "--sort-by",
    f"{VALIDATION}:validation_rmse",
    "--drop",
    ".*",
    "--keep",
    "Experiment|validation_rmse|best_value|sweep.n_trials|featurize.k_values",
)


def scalars(path: Path) -> dict[str, Any]:
    """A metrics file as DVC's metrics view shows it: lists and empty mappings left out, at
    every level (the per-fold CV scores, the sweep's "at_bound": {}, the folds of each bag
    size in its "bagging" block)."""

    def shown(node: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in node.items():
            if isinstance(value, dict):
                value = shown(value)
            if not isinstance(value, list) and value != {}:
                out[key] = value
        return out

    return shown(json.loads(path.read_text()))


def run(repo: Path, mirror: Path, *args: str) -> str:
    return dvc(repo, *args, mirror=mirror, env=DVC_ENV).stdout


def cheaper(argv: list[str], key: str, value: str) -> list[str]:
    """``argv`` with only ``key``'s ``--set-param``/``-S`` value replaced by ``value``, and
    the experiment name that carries the old value (``-n trials60``) renamed to match."""
    out = list(argv)
    where = [i for i, word in enumerate(out[:-1]) if word in ("--set-param", "-S")]
    (i,) = [i for i in where if out[i + 1].startswith(f"{key}=")]
    old = out[i + 1].partition("=")[2]
    out[i + 1] = f"{key}={value}"
    for j, word in enumerate(out[:-1]):
        if word in ("-n", "--name"):
            out[j + 1] = out[j + 1].replace(old, value)
    return out


def exp_show(repo: Path, mirror: Path) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json` as {experiment name: {"params": ..., "metrics": ...}}."""
    out: dict[str, dict[str, Any]] = {}
    for baseline in json.loads(run(repo, mirror, "exp", "show", "--json", "--all-commits")):
        for exp_range in baseline.get("experiments") or []:
            for rev in exp_range["revs"]:
                data = rev["data"]
                out[rev.get("name") or exp_range.get("name")] = {
                    "params": data["params"]["params.yaml"]["data"],
                    "metrics": {k: v["data"] for k, v in data["metrics"].items()},
                    "status": data.get("status"),
                }
    return out


def choose(repo: Path, mirror: Path, candidates: set[str]) -> tuple[list[str], list[str]]:
    """The documented choosing table as CSV: (its columns, the candidates best first)."""
    table = list(csv.DictReader(io.StringIO(run(repo, mirror, *CHOOSE, "--csv"))))
    return list(table[0]), [row["Experiment"] for row in table if row["Experiment"] in candidates]


@pytest.fixture(scope="module")
def lab(pipeline_repo, pushed, mirror_csv, tmp_path_factory) -> Path:
    """A copy of the pipeline workspace, its commit pushed to its own bucket on the emulator."""
    repo = copy_workspace(pipeline_repo, tmp_path_factory.mktemp("lab") / "repo")
    create_bucket(pushed.emulator, "dvc-lab")
    point_remote(repo, pushed.endpoint, "dvc-lab")
    run(repo, mirror_csv, "push", "--run-cache")
    return repo


@pytest.fixture(scope="module")
def experiments(lab, mirror_csv, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Two independent experiments (`--temp`: each from the commit, the workspace untouched),
    typed by hand while `make serve` runs on the workspace's champion.

    As in a user's clone, no signing key is exported: the stage finds the workspace's
    development key in .keys/ (this test run's pair, which signed the shared build), and the
    registry and champion/ of the workspace, not of DVC's temporary copy. The first is the
    README's `dvc exp run` line with one cheaper value: 2 trials, not 60 (60 trials would
    add minutes to this module's budget); its name follows (trials2). The second has other
    features and lets any candidate through the gates (floors and `max_delta_rmse`): it is
    promoted, and the running API must hot-reload it.
    """
    private, public = promotion_keys()
    (lab / ".keys").mkdir()
    shutil.copy2(private, lab / ".keys" / "signing-key.pem")
    shutil.copy2(public, lab / ".keys" / "signing-key.pub")
    hand_typed = {"HOUSING_SIGNING_KEY_FILE": "", "HOUSING_ALLOW_UNSIGNED": ""}
    baseline = head(lab)
    features_before = (lab / FEATURES).read_text()
    program, *args = cheaper(readme_argv("dvc exp run"), "sweep.n_trials", "2")
    assert program == "dvc" and args[args.index("-n") + 1] == "trials2", args
    log = tmp_path_factory.mktemp("serve") / "make-serve.log"
    with running_make_serve(lab, user_env(mirror_csv), log, shared_venv=True) as api:
        api.wait("the workspace's champion served", api.ready)
        before = api.json("/api/v1/model")
        trials = dvc(lab, *args, mirror=mirror_csv, env={**DVC_ENV, **hand_typed}).stdout
        # No cluster features at all: other features, so another CV score (a K search that
        # ends on the same K would give the same sweep, and a tie ranks either way).
        kvalues = dvc(
            lab,
            *("exp", "run", "--temp", "-n", "kvalues"),
            *("-S", "featurize.k_values=[0]", "-S", "featurize.k_start=0"),
            *("-S", "register.gates.max_delta_rmse=100000", "-S", "register.gates.min_r2=0.5"),
            *("-S", "register.gates.max_rmse=100000"),
            mirror=mirror_csv,
            env={**DVC_ENV, **hand_typed},
        ).stdout
        champion = json.loads((lab / "champion" / "promotion.json").read_text())
        api.wait(
            f"hot reload of v{champion['version']}",
            lambda: api.json("/api/v1/model")["version"] == champion["version"],
            timeout=120,  # the reload check runs every 30 s (RELOAD_INTERVAL_S)
        )
        after = api.json("/api/v1/model")
    yield {
        "baseline": baseline,
        "features_before": features_before,
        "output": {"trials2": trials, "kvalues": kvalues},
        "served": (before, after),
        "champion": champion,
    }


def test_a_hand_typed_experiment_is_signed_and_hot_reloaded_by_make_serve(lab, experiments):
    """Issue 23's first flow: the experiment registers into the workspace's registry, signs
    with the development key the stage finds itself, exports to the workspace's champion/,
    and the running `make serve` (which trusts that key) reloads it."""
    from housing.registry import version_for_alias
    from housing.signing import KeyRing, verify

    before, after = experiments["served"]
    champion = experiments["champion"]
    assert after["version"] != before["version"]
    assert after["signed"] is True and after["source"] == "registry", after
    assert after["promotion"]["sequence"] == champion["sequence"] > before["promotion"]["sequence"]
    registry = version_for_alias(tracking_uri=f"sqlite:///{lab / 'mlflow.db'}")
    assert registry.version == champion["version"] == after["version"]
    result = verify(lab / "champion", KeyRing.from_files([lab / ".keys" / "signing-key.pub"]))
    assert result.signed and result.record.version == champion["version"]
    # Nothing registered inside DVC's temporary copies (deleted with them anyway).
    assert not list((lab / ".dvc" / "tmp").rglob("mlflow.db"))


def test_set_param_reruns_exactly_the_affected_stages(lab, experiments, mirror_csv):
    assert ran_stages(experiments["output"]["trials2"]) == ["sweep", "register"]
    shown = exp_show(lab, mirror_csv)
    features_changed = shown["kvalues"]["metrics"][FEATURES] != json.loads(
        experiments["features_before"]
    )
    assert features_changed  # K = 0 now: the feature report changes
    expected = ["featurize", *DOWNSTREAM_OF_FEATURIZE]
    assert ran_stages(experiments["output"]["kvalues"]) == expected
    # --temp leaves the workspace on the commit.
    assert git(lab, "status", "--porcelain") == ""
    assert head(lab) == experiments["baseline"]


def test_exp_show_lists_experiments_with_params_cv_and_test_metrics(lab, experiments, mirror_csv):
    shown = exp_show(lab, mirror_csv)
    assert {"trials2", "kvalues"} <= set(shown)
    assert shown["trials2"]["params"]["sweep"]["n_trials"] == 2
    assert shown["trials2"]["params"]["featurize"]["k_values"] == [0, 4, 8]
    assert shown["kvalues"]["params"]["featurize"]["k_values"] == [0]
    assert shown["kvalues"]["params"]["sweep"]["n_trials"] != 2
    for name in ("trials2", "kvalues"):
        assert shown[name]["metrics"][SWEEP]["best_value"] > 0
        assert shown[name]["metrics"][VALIDATION]["validation_rmse"] > 0
        metrics = shown[name]["metrics"][METRICS]
        assert metrics["rmse"] > 0 and 0 < metrics["r2"] <= 1
    table = run(lab, mirror_csv, "exp", "show", "--md")
    assert "trials2" in table and "kvalues" in table and "sweep.n_trials" in table
    assert "best_value" in table and "validation_rmse" in table


def _validation(shown: dict[str, dict[str, Any]], name: str) -> float:
    return shown[name]["metrics"][VALIDATION]["validation_rmse"]


@pytest.fixture(scope="module")
def choice(lab, experiments, mirror_csv) -> tuple[list[str], list[str]]:
    """The choosing table of the two experiments, read before any is applied."""
    return choose(lab, mirror_csv, {"trials2", "kvalues"})


def test_the_choosing_table_ranks_by_validation_and_hides_test_metrics(lab, choice, mirror_csv):
    columns, ranked = choice
    assert set(columns) == {
        "Experiment",
        "validation_rmse",
        "best_value",
        "sweep.n_trials",
        "featurize.k_values",
    }
    shown = exp_show(lab, mirror_csv)
    score = {name: _validation(shown, name) for name in ("trials2", "kvalues")}
    assert score["trials2"] != score["kvalues"]  # a tie would rank either way
    assert ranked == sorted(score, key=score.__getitem__)


def test_diff_apply_the_choice_commit_push_and_a_colleague_pulls_it(
    lab, experiments, choice, pushed, mirror_csv, tmp_path
):
    """The full loop: choose on the validation score, diff, apply, commit, push; a clone gets
    it exactly."""
    shown = exp_show(lab, mirror_csv)
    best = choice[1][0]
    # The choice is the lowest validation RMSE, whatever the test RMSEs say.
    assert best == min(("trials2", "kvalues"), key=lambda n: _validation(shown, n))
    diff = json.loads(run(lab, mirror_csv, "exp", "diff", experiments["baseline"], best, "--json"))
    assert "validation_rmse" in diff["metrics"][VALIDATION]
    assert "rmse" in diff["metrics"][METRICS]  # the final report of the change
    assert diff["params"]["params.yaml"]  # the changed knob is listed

    run(lab, mirror_csv, "exp", "apply", best)
    assert scalars(lab / SWEEP) == shown[best]["metrics"][SWEEP]
    assert scalars(lab / METRICS) == shown[best]["metrics"][METRICS]
    git(lab, "add", "-A")
    git(lab, "commit", "-q", "-m", f"Adopt experiment {best}")
    run(lab, mirror_csv, "push", "--run-cache")
    assert run(lab, mirror_csv, "status").strip().endswith("Data and pipelines are up to date.")

    colleague = clone(lab, tmp_path / "colleague", pushed.endpoint, "dvc-lab")
    run(colleague, mirror_csv, "pull")
    for path, md5 in lock_outs(colleague).items():
        assert out_md5_matches(colleague, path, md5), path
    assert md5_file(colleague / "models/model.skops") == md5_file(lab / "models/model.skops")
    assert ran_stages(run(colleague, mirror_csv, "repro")) == []


def run_cacheable(repo: Path) -> dict[str, bool]:
    """Stages DVC saves to the run cache: those without an uncached plain (non-metric) out.

    DVC 3 skips the run cache for a stage with a `cache: false` output that is neither a
    metric nor a plot (dvc/stage/__init__.py, `no_cache_outs`).
    """
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        entries = [e for e in stage.get("outs", []) if isinstance(e, dict)]
        uncached = any(opts.get("cache") is False for e in entries for opts in e.values())
        out[name] = not uncached
    return out


def test_pushed_run_cache_spares_a_colleague_the_recompute(
    lab, experiments, pushed, mirror_csv, tmp_path
):
    """A colleague with only the pushed run cache (no dvc.lock) gets cacheable stages from it.

    Reproduced up to `split` only: the first two stages are what the run cache restored in
    every run of the full rebuild (preprocess, featurize and select re-ran, cause not found;
    DVC 3 never run-caches sweep, whose `cache: false` plain out `run_cacheable` reads;
    docs/remote.md says so). The full rebuild cost this module two minutes for no more proof.
    """
    run(lab, mirror_csv, "push", "--run-cache")
    colleague = clone(lab, tmp_path / "colleague", pushed.endpoint, "dvc-lab")
    git(colleague, "checkout", "-q", experiments["baseline"])
    tracked = set(git(colleague, "ls-files").splitlines())
    expected_outs = {p: m for p, m in lock_outs(colleague).items() if p not in tracked}
    run(colleague, mirror_csv, "fetch", "--run-cache")
    (colleague / "dvc.lock").unlink()  # nothing recorded: only the run cache can spare a run

    out = run(colleague, mirror_csv, "repro", "split")

    for stage in ("download", "split"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out
    assert ran_stages(out) == []
    assert not run_cacheable(colleague)["sweep"] and run_cacheable(colleague)["register"]
    for path in (
        "data/raw/housing.csv",
        "data/split/train.parquet",
        "data/split/validation.parquet",
        "data/split/test.parquet",
    ):
        assert md5_file(colleague / path) == expected_outs[path], path
