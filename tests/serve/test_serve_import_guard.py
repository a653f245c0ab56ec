"""A real `python -m serve` process serves the bundle without importing the training stack.

The server runs through a tiny wrapper (written by the test, not shipped) that dumps
``sorted(sys.modules)`` to a file on SIGUSR1 and at exit: no endpoint of the API changes.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
from serve_support import copy_bundle, running_uvicorn

pytestmark = pytest.mark.slow

# The image ships none of these (tests/containers check its site-packages): scipy is gone
# from serving since the neighbour grid index; treelite/tl2cgen compile at promotion only.
# (wandb is the image's optional extra, and this server logs to it offline.)
FORBIDDEN = (
    "sklearn",
    "pandas",
    "pyarrow",
    "skops",
    "mlflow",
    "scipy",
    "lightgbm",
    "gcsfs",
    "treelite",
    "tl2cgen",
)

WRAPPER = """
import atexit, json, os, runpy, signal, sys

def dump(path):
    with open(path + ".tmp", "w") as fh:
        json.dump(sorted(sys.modules), fh)
    os.replace(path + ".tmp", path)

signal.signal(signal.SIGUSR1, lambda *_: dump(os.environ["MODULES_NOW"]))
atexit.register(dump, os.environ["MODULES_AT_EXIT"])
sys.argv = ["serve"]
sys.path.insert(0, os.getcwd())  # as `python -m serve` run from the repository would
runpy.run_module("serve", run_name="__main__", alter_sys=True)
"""


def _imported(modules: list[str], name: str) -> bool:
    return any(m == name or m.startswith(f"{name}.") for m in modules)


def test_serving_process_never_imports_the_training_stack(model_bundle_dir, tmp_path: Path):
    bundle = copy_bundle(model_bundle_dir, tmp_path / "models")
    wrapper = tmp_path / "serve_with_module_dump.py"
    wrapper.write_text(WRAPPER)
    now, at_exit = tmp_path / "modules-now.json", tmp_path / "modules-exit.json"
    with running_uvicorn(
        tmp_path,
        [sys.executable, str(wrapper)],
        HOST="127.0.0.1",
        LOCAL_MODEL_DIR=str(bundle),
        MODEL_SOURCES="local",
        WANDB_MODE="offline",
        WANDB_DIR=str(tmp_path),
        MODULES_NOW=str(now),
        MODULES_AT_EXIT=str(at_exit),
    ) as server:
        example = httpx.get(f"{server.base_url}/api/v1/contract", timeout=10).json()["example"]
        response = httpx.post(
            f"{server.base_url}/api/v1/predict", json={"instances": [example]}, timeout=10
        )
        assert response.status_code == 200, response.text
        server.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 20
        while not now.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert now.exists(), server.logs()[-2000:]
    modules = json.loads(now.read_text())
    assert "housing.serving.loader" in modules and "housing.serving.neighbors" in modules
    leaked = [name for name in FORBIDDEN if _imported(modules, name)]
    assert leaked == [], f"imported by the serving process: {leaked}"
