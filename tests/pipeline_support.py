"""Run the real DVC pipeline in a throw-away copy of this repository.

Tests never run DVC in the developer's work tree: :func:`make_pipeline_repo` copies the
files git knows about (tracked, or untracked and not ignored) into a new git repository,
optionally with fast parameters, and :func:`dvc` runs the real ``dvc`` CLI there with the
offline data mirror, W&B disabled and MLflow on a SQLite file inside the copy.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


class Replace(dict):
    """A mapping that replaces, rather than merges into, the value it overrides."""


# Small but real: the whole data set, fewer candidates, folds and trials (about a minute).
FAST_PARAMS: dict[str, Any] = {
    "preprocess": {"imputers": ["median", "mean"], "cv_folds": 2},
    "featurize": {
        "k_values": [0, 4, 8],
        "k_start": 4,
        "neighbor_values": [4, 8],
        "neighbor_scales": [16],
        "cv_folds": 2,
    },
    "select": {"cv_folds": 3, "n_trials": 2, "families": ["linear", "lightgbm"]},
    "sweep": {
        "n_trials": 4,
        "cv_folds": 3,
        "resource_step": 40,
        # Exercised, but cheap: a bag of two is fitted on every fold (and by register).
        "bagging": {"sizes": [1, 2]},
        "config": {"early_terminate": {"min_iter": 40}},
        "spaces": Replace(
            lightgbm={
                "n_estimators": {"distribution": "int_uniform", "min": 80, "max": 160},
                "learning_rate": {"distribution": "log_uniform_values", "min": 0.05, "max": 0.2},
                "num_leaves": {"distribution": "int_uniform", "min": 15, "max": 63},
            },
            linear={"alpha": {"distribution": "log_uniform_values", "min": 0.01, "max": 10.0}},
        ),
    },
    "register": {"bootstrap_resamples": 200},
}


def sample_params(sample: Path) -> dict[str, Any]:
    """FAST_PARAMS for a pipeline run on the data sample at ``sample`` (its checksum pinned).

    A few thousand rows cannot reach the production gate floors; sample runs test the
    pipeline's mechanics, so the gates are lowered to what such a sample can pass.
    """
    import hashlib

    params = deep_merge(
        FAST_PARAMS,
        {
            "download": {"sha256": hashlib.sha256(Path(sample).read_bytes()).hexdigest()},
            "register": {"gates": {"min_r2": 0.6, "max_rmse": 80_000}},
        },
    )
    # Leaves of at least 100 of some 2,100 rows: most trees stop short of num_leaves, which
    # LightGBM reports ("No further splits ...") unless verbose=-1 holds on every thread.
    spaces = params["sweep"]["spaces"]
    spaces["lightgbm"] = {**spaces["lightgbm"], "min_child_samples": {"value": 100}}
    return params


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in; nested mappings merge, other values replace."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Replace):
            out[key] = copy.deepcopy(dict(value))
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _plain(value: Any) -> Any:
    """Nested plain dicts and lists (yaml.safe_dump refuses dict subclasses)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def project_files(root: Path = REPO_ROOT) -> list[str]:
    """Files git tracks or would track (untracked but not ignored) under ``root``."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (root / f).is_file()})


@functools.cache
def promotion_keys() -> tuple[Path, Path]:
    """(private, public) key files every pipeline run of the test run signs with, as the
    Makefile's development key does (HOUSING_SIGNING_KEY_FILE); in a temporary directory.

    One pair for the whole run, every xdist worker included: the shared ``pipeline_repo``
    is built by whichever worker needs it first, and a test on another worker verifies its
    champion (a pair per process made that test fail whenever the builder was another
    worker). The workers share xdist's ``PYTEST_XDIST_TESTRUNUID``; the first to come
    writes the pair under a file lock.
    """
    from filelock import FileLock

    from housing.signing import write_keypair

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:  # one process: its own pair
        private, public, _kid = write_keypair(Path(tempfile.mkdtemp(prefix="housing-test-keys-")))
        return private, public
    folder = Path(tempfile.gettempdir()) / f"housing-test-keys-{run}"
    with FileLock(f"{folder}.lock"):
        if not (folder / "signing-key.pub").is_file():
            folder.mkdir(exist_ok=True)
            write_keypair(folder, force=True)  # a pair half-written by a killed run
    return folder / "signing-key.pem", folder / "signing-key.pub"


def pipeline_env(
    repo: Path, mirror: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for the pipeline: offline mirror, W&B off, MLflow in the copy, the
    session's promotion key. No thread variables: the stages pin their native pools
    themselves (stages/__init__.py), as for a `dvc repro` typed in a user's shell."""
    threads = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "WANDB_")) and k not in threads
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        HOUSING_DATA_MIRROR=str(mirror),
        WANDB_MODE="disabled",
        GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
        PYTHONPATH=str(repo),
        HOUSING_SIGNING_KEY_FILE=str(promotion_keys()[0]),
    )
    env.pop("VIRTUAL_ENV", None)
    env.pop("HOUSING_SIGNING_KEY", None)
    env.update(extra or {})
    return env


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its stdout."""
    env = pipeline_env(repo, Path("/dev/null"))
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


def make_pipeline_repo(
    dest: Path, *, params: Mapping[str, Any] | None = FAST_PARAMS, root: Path = REPO_ROOT
) -> Path:
    """Copy the project to ``dest`` as a fresh one-commit git repo, with ``params`` merged in."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    if params:
        path = dest / "params.yaml"
        merged = _plain(deep_merge(yaml.safe_load(path.read_text()), params))
        path.write_text(yaml.safe_dump(merged, sort_keys=False))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "test copy of the project")
    return dest


def dvc(
    repo: Path,
    *args: str,
    mirror: Path,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``dvc`` CLI in ``repo``; raise with its output when ``check`` fails."""
    proc = subprocess.run(
        [str(VENV_BIN / "dvc"), *args],
        cwd=repo,
        env=pipeline_env(repo, mirror, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dvc {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def ran_stages(output: str) -> list[str]:
    """Names of the stages a ``dvc repro``/``exp run`` output says it ran."""
    stages = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("Running stage '"):
            stages.append(line.split("'")[1])
    return stages


def lock_outs(repo: Path) -> dict[str, str]:
    """Map of every output path in ``dvc.lock`` to its md5."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            outs[out["path"]] = out["md5"]
    return outs


def copy_workspace(src: Path, dest: Path) -> Path:
    """Copy a whole pipeline workspace (git, DVC cache, outputs, registry) to ``dest``."""
    shutil.copytree(src, dest, symlinks=True)
    return dest
