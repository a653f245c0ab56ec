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
