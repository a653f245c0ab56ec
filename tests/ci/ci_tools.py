"""Shared helpers of the CI-configuration tests: repository paths and bundled tool binaries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
DOCKERFILES = [REPO_ROOT / name for name in ("Dockerfile", "serve/Dockerfile", "app/Dockerfile")]
COMPOSE = REPO_ROOT / "docker-compose.yaml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"


def tool(name: str) -> str:
    """Path of a tool installed in the project's environment (beside this Python), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    assert found, f"{name} is not installed (it comes with the dev extra)"
    return found


def run(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
