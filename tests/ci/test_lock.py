"""dvc.lock hashes what a fresh clone has: every directory dependency counts its tracked files.

`dvc commit` in a work tree with Python bytecode once recorded `__pycache__/*.pyc` in the
register stage's code dependencies, so a fresh clone (no bytecode) saw the stage as changed.
`.dvcignore` now leaves bytecode out; this keeps it that way.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_directory_dependencies_count_only_tracked_files():
    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text())
    checked = 0
    for name, stage in lock["stages"].items():
        for dep in stage.get("deps", []):
            if "nfiles" not in dep:
                continue
            tracked = subprocess.run(
                ["git", "ls-files", dep["path"]],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            assert dep["nfiles"] == len(tracked), (name, dep["path"], dep["nfiles"], tracked)
            checked += 1
    assert checked >= 2  # register's src/housing/serving, sweep's src/housing/sweep


def test_dvcignore_leaves_out_bytecode():
    patterns = (REPO_ROOT / ".dvcignore").read_text().split()
    assert "__pycache__/" in patterns and "*.pyc" in patterns


def test_the_lock_records_the_code_and_params_the_stages_now_have():
    """A fresh clone's `dvc repro` must run nothing for the committed outputs: every code
    dependency and parameter in dvc.lock matches the tree (checked with DVC's own status,
    ~3 s). Outputs a stage produces are left out: a clone has none, and a workspace may
    hold an experiment's. A code change committed without the lock failed only the
    full-pipeline test before, 12 minutes into the suite."""
    from dvc.repo import Repo

    with Repo(str(REPO_ROOT)) as repo:
        produced = {str(out) for stage in repo.index.stages for out in stage.outs}
        status = repo.status()
    stale = {}
    for name, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):
                continue
            deps = {
                path: state
                for path, state in change.get("changed deps", {}).items()
                if path not in produced
            }
            params = change.get("changed params", {})
            if deps or params:
                stale[name] = {**deps, **params}
    assert not stale, f"dvc.lock is stale (re-run the stages and commit dvc.lock): {stale}"


def test_no_tracked_file_is_one_git_ignores():
    """An ignored file that is still tracked stays tracked: a clone gets it, and a run that
    rewrites it (reports/register/registration.json, new on every registration) leaves
    `git status` dirty. The test copies of the project never track ignored files, so only
    this check sees it."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--ignored", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == [], f"tracked but ignored (git rm --cached them): {out}"
