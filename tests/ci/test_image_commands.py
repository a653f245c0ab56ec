"""Each image's command, run outside Docker from a clean venv with only that image's requirements.

This proves the exported requirements are complete for the role (the API without the training
stack, the app without the model stack) without a Docker engine: the venv gets exactly what the
Dockerfile installs, and the code is copied to a fresh directory the way the image lays it out.
It fails in seconds where an image build takes minutes; tests/containers/ builds and runs the
real images with podman.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from ci_tools import REPO_ROOT, run

pytestmark = pytest.mark.slow

# How the API is pointed at a local model bundle directory (see serve/config.py).
LOCAL_MODEL_ENV = {"LOCAL_MODEL_DIR": "{bundle}"}
STARTUP_TIMEOUT_S = 180.0


def _load_smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke_api", REPO_ROOT / "scripts/smoke_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["smoke_api"] = module
    spec.loader.exec_module(module)
    return module


smoke = _load_smoke()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What the API image leaves out on purpose although a package there declares it: the
# model-fitting stack the housing package declares, and LightGBM's Python-side dependencies
# (the API loads its library with ctypes). The Dockerfile installs its pins with --no-deps.
API_LEFT_OUT = frozenset({"pandas", "pyarrow", "scikit-learn", "skops", "scipy", "narwhals"})


def _clean_venv(
    root: Path, requirements: str, *, with_project: bool, left_out: frozenset[str] = frozenset()
) -> Path:
    """A fresh venv with ``requirements`` (and the housing package, without deps, if asked).

    With ``left_out``, the pins are installed as the API's Dockerfile does (--no-deps), and
    only those declared dependencies may be missing."""
    # The Makefile's uv: the one on PATH, else its project-local copy in .tools/ (`make install`).
    local_uv = REPO_ROOT / ".tools" / "bin" / "uv"
    uv = shutil.which("uv") or (str(local_uv) if local_uv.is_file() else None)
    assert uv, "uv is needed to install the requirements quickly (run `make install`)"
    venv = root / "venv"
    done = run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    assert done.returncode == 0, done.stderr
    python = str(venv / "bin" / "python")
    no_deps = ["--no-deps"] if left_out else []
    done = run(
        uv, "pip", "install", "--python", python, *no_deps, "-r", str(REPO_ROOT / requirements)
    )
    assert done.returncode == 0, done.stderr
    if with_project:
        done = run(uv, "pip", "install", "--python", python, "--no-deps", str(REPO_ROOT))
        assert done.returncode == 0, done.stderr
    # Every installed distribution has its own dependencies (`--no-deps .` left nothing out),
    # but for what ``left_out`` names.
    done = run(uv, "pip", "check", "--python", python)
    report = done.stdout + done.stderr
    unmet = [line for line in report.splitlines() if line.startswith("The package")]
    required = [re.search(r"requires `([A-Za-z0-9_.-]+)", line) for line in unmet]
    assert all(m and m[1] in left_out for m in required), report
    assert done.returncode == 0 or unmet, report
    return venv


def _image_workdir(root: Path, *packages: str) -> Path:
    """The image's WORKDIR: only the code directories its Dockerfile copies, plus the single
    files of ``src/`` that each package's Dockerfile copies (``COPY src/a.py ./a/``)."""
    workdir = root / "workdir"
    workdir.mkdir()
    for package in packages:
        shutil.copytree(
            REPO_ROOT / package,
            workdir / package,
            ignore=shutil.ignore_patterns("__pycache__", "Dockerfile", "requirements.txt"),
        )
        dockerfile = REPO_ROOT / package / "Dockerfile"
        lines = dockerfile.read_text(encoding="utf-8").splitlines() if dockerfile.is_file() else []
        for line in lines:
            words = line.split()
            if words[:1] != ["COPY"] or not words[1].startswith("src/") or words[1].endswith("/"):
                continue  # a whole src/ goes to a build stage, which installs it as a package
            *sources, dest = words[1:]
            target = workdir / dest
            target.mkdir(parents=True, exist_ok=True)
            for source in sources:
                shutil.copy2(REPO_ROOT / source, target)
    return workdir


def _env(venv: Path, home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment, so nothing leaks in from the developer's shell or the repo venv."""
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


@pytest.fixture
def server() -> Iterator[list[subprocess.Popen]]:
    """Processes started by a test; stopped (by their own pid) afterwards."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _start(
    started: list[subprocess.Popen], venv: Path, module: str, cwd: Path, env: dict[str, str]
) -> subprocess.Popen:
    log = (cwd.parent / f"{module}.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "python"), "-m", module],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    started.append(proc)
    return proc


def _log(cwd: Path, module: str) -> str:
    return (cwd.parent / f"{module}.log").read_text(errors="replace")[-4000:]


def _until_up(proc: subprocess.Popen, check, base: str, workdir: Path, module: str):
    """Retry ``check`` in short rounds; fail at once if the server process has exited."""
    end = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{module} exited with {proc.returncode}\n{_log(workdir, module)}")
        try:
            return check(base, 5.0)
        except smoke.SmokeError as exc:
            if time.monotonic() > end:
                pytest.fail(f"{exc}\n--- server log ---\n{_log(workdir, module)}")


def test_api_command_from_its_own_requirements(
    tmp_path: Path, champion_dir: Path, server: list[subprocess.Popen]
) -> None:
    venv = _clean_venv(tmp_path, "serve/requirements.txt", with_project=True, left_out=API_LEFT_OUT)
    absent = run(
        str(venv / "bin/python"),
        "-c",
        "import importlib.util as u, sys; "
        "sys.exit(sum(u.find_spec(m) is not None for m in ('dvc', 'optuna', 'matplotlib', "
        "'sklearn', 'pandas', 'pyarrow', 'skops', 'scipy', 'mlflow', 'wandb', 'gcsfs')))",
    )
    assert absent.returncode == 0, "the API venv carries part of the training stack"

    workdir = _image_workdir(tmp_path, "serve")
    port = _free_port()
    model_env = {k: v.format(bundle=champion_dir) for k, v in LOCAL_MODEL_ENV.items()}
    env = _env(venv, tmp_path, HOST="127.0.0.1", PORT=str(port), **model_env)
    proc = _start(server, venv, "serve", workdir, env)

    base = f"http://127.0.0.1:{port}"
    _until_up(proc, smoke.wait_healthy, base, workdir, "serve")
    price = _until_up(proc, smoke.predict_example, base, workdir, "serve")
    assert price > 0
    assert proc.poll() is None


def test_app_command_from_its_own_requirements(
    tmp_path: Path, server: list[subprocess.Popen]
) -> None:
    venv = _clean_venv(tmp_path, "app/requirements.txt", with_project=False)
    workdir = _image_workdir(tmp_path, "app")
    port = _free_port()
    nowhere = f"http://127.0.0.1:{_free_port()}"  # the API is down: the page must still render
    env = _env(venv, tmp_path, HOST="127.0.0.1", PORT=str(port), API_URL=nowhere)
    proc = _start(server, venv, "app", workdir, env)

    deadline_error = None
    for _ in range(int(STARTUP_TIMEOUT_S)):
        if proc.poll() is not None:
            pytest.fail(f"app exited with {proc.returncode}\n{_log(workdir, 'app')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=3) as r:
                assert r.status == 200 and r.read().strip() == b"ok"
                break
        except OSError as exc:
            deadline_error = exc
            time.sleep(1)
    else:
        pytest.fail(f"/_stcore/health: {deadline_error}\n{_log(workdir, 'app')}")

    # The health endpoint does not run the page: run it once, headless, in the same venv.
    page = run(
        str(venv / "bin/python"),
        "-c",
        "from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file('app/main.py', default_timeout=120)\n"
        "at.run()\n"
        "raise SystemExit('\\n'.join(str(e.value) for e in at.exception) or 0)\n",
        cwd=workdir,
    )
    assert page.returncode == 0, page.stdout + page.stderr


def test_pipeline_command_from_its_own_requirements(tmp_path: Path) -> None:
    venv = _clean_venv(tmp_path, "requirements/pipeline.txt", with_project=True)
    python = str(venv / "bin/python")

    version = run(str(venv / "bin/dvc"), "version")
    assert version.returncode == 0, version.stderr
    supports = next(line for line in version.stdout.splitlines() if "Supports" in line)
    supports += " ".join(version.stdout.split("Supports:", 1)[1].splitlines()[:6])
    assert "gs (" in supports, version.stdout  # the GCS remote plugin is installed

    workdir = _image_workdir(tmp_path, "stages")
    imported = run(
        python,
        "-c",
        "import importlib, pkgutil, stages\n"
        "names = [m.name for m in pkgutil.iter_modules(stages.__path__)]\n"
        "assert names, 'no stage modules'\n"
        "for name in names: importlib.import_module(f'stages.{name}')\n",
        cwd=workdir,
    )
    assert imported.returncode == 0, imported.stderr
