"""scripts/release.sh refuses, in one line and before touching anything, a release with no
team registry or no signing key: it never falls back to a local registry or a dev key.
(The release itself runs end to end in tests/remote/conftest.py::pushed.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "release.sh"
CLEAN = {
    k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HOUSING_SIGNING_KEY"))
}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "error: MLFLOW_TRACKING_URI is not set"),
        ({"MLFLOW_TRACKING_URI": "http://mlflow:5000"}, "error: HOUSING_SIGNING_KEY is not set"),
    ],
)
def test_a_release_without_registry_or_key_is_refused(env, message) -> None:
    done = subprocess.run(
        [str(SCRIPT)], env={**CLEAN, **env}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1


def test_unknown_arguments_are_refused() -> None:
    done = subprocess.run(
        [str(SCRIPT), "--force"], env=CLEAN, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "unknown argument --force" in done.stderr
