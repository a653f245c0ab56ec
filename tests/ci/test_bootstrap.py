"""README command 1's install step on a stock Debian machine: system python3, no uv on PATH.

Debian's and Ubuntu's ``/usr/bin/python3`` refuse ``pip install`` (PEP 668), so the Makefile
must bootstrap uv into a project-local venv (``.tools/``) and never touch the system
interpreter. The test runs the real ``make install`` in a copy of the project with a PATH that
holds only the system directories.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ci_tools import REPO_ROOT

pytestmark = pytest.mark.slow

SYSTEM_PYTHON = Path("/usr/bin/python3")
# What `uv sync` needs to build and install the project (pyproject names README as readme).
PROJECT_FILES = ("Makefile", "pyproject.toml", "uv.lock", "README.md", "src")


def _uv_version() -> str:
    match = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert match, "Makefile pins no UV_VERSION"
    return match.group(1)


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("stock") / "project"
    dst.mkdir()
    for name in PROJECT_FILES:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst / name)
    return dst


def _stock_env() -> dict[str, str]:
    """The environment of a fresh Debian shell: system PATH only, no uv, no pyenv, no venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYENV", "VIRTUAL_ENV", "UV"))}
    env["PATH"] = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
    # The shared uv cache keeps this fast; it is a cache, not an installed tool.
    env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))
    return env


def test_stock_path_has_no_uv() -> None:
    assert SYSTEM_PYTHON.is_file(), "Debian's python3 is missing on this machine"
    assert shutil.which("uv", path=_stock_env()["PATH"]) is None, (
        "uv is on the system PATH: the test would not prove the bootstrap"
    )


@pytest.mark.timeout(900)
def test_install_with_system_python_and_no_uv(project_copy: Path) -> None:
    proc = subprocess.run(
        ["make", "install", f"PYTHON={SYSTEM_PYTHON}"],
        cwd=project_copy,
        env=_stock_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    uv = project_copy / ".tools" / "bin" / "uv"
    assert uv.is_file(), "uv was not bootstrapped into .tools/"
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=True)
    assert _uv_version() in version.stdout
    python = project_copy / ".venv" / "bin" / "python"
    check = subprocess.run(
        [str(python), "-c", "import sys, housing, dvc, fastapi; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.strip() == "(3, 11)"
    # The system interpreter got nothing: uv lives only in the project's tool venv.
    system = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import uv"], capture_output=True, text=True, check=False
    )
    assert system.returncode != 0 and "No module named 'uv'" in system.stderr


def test_missing_venv_module_is_one_clear_line(tmp_path: Path, project_copy: Path) -> None:
    """A python3 without venv (Debian without python3-venv) fails with the package to install."""
    fake = tmp_path / "python3"
    fake.write_text(
        "#!/bin/sh\n"
        # Refuse `import ensurepip, venv` like Debian's python3 without python3-venv does.
        'case "$*" in *ensurepip*) exit 1;; esac\n'
        f'exec {SYSTEM_PYTHON} "$@"\n'
    )
    fake.chmod(0o755)
    work = tmp_path / "p"
    shutil.copytree(project_copy, work, ignore=shutil.ignore_patterns(".venv", ".tools"))
    proc = subprocess.run(
        ["make", "install", f"PYTHON={fake}"],
        cwd=work,
        env=_stock_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "install python3-venv" in proc.stderr
    assert not (work / ".venv").exists()
