"""Helpers for the API tests: settings, bundles, free ports, a GCS emulator handle, real uvicorn.

Processes started here listen on 127.0.0.1 only and are stopped by pid.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from serve.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process we started, then SIGKILL it if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def make_settings(**overrides: Any) -> Settings:
    """Test settings: local source only, model loaded before the app serves, no W&B."""
    base: dict[str, Any] = {
        "model_sources": ("local",),
        "wandb_mode": "disabled",
        "load_in_background": False,
        "reload_interval_s": 0.0,
        "log_json": False,
        "access_log": False,
        "mlflow_tracking_uri": None,
        "gcs_bucket": None,
        "admin_token": None,
    }
    return Settings(_env_file=None, **(base | overrides))


def copy_bundle(src: Path, dst: Path, **record: Any) -> Path:
    """``src`` promoted into ``dst`` as a champion (what the API serves), replacing ``dst``
    whole in one rename; ``record`` sets the key, version or sequence (write_champion)."""
    if (src / "promotion.json").is_file() and not record:
        staging = dst.with_name(f".{dst.name}.copy")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(src, staging)
        shutil.rmtree(dst, ignore_errors=True)
        staging.rename(dst)
        return dst
    return root_conftest().write_champion(src, dst, **record)


def register_bundle(
    uri: str,
    bundle: Path,
    train: Any,
    *,
    rmse: float,
    commit: str,
    r2: float = 0.9,
    promote: bool = True,
) -> Any:
    """Register ``bundle`` with the real register code (MLflow), tagged as the stage tags it.

    ``promote`` forces the move (these tests move the alias on purpose; the paired gate is
    tested in tests/housing); without it the version is held: no evaluation, fail closed.
    """
    import json

    from housing.artifact import TRUSTED_TYPES, load_bundle
    from housing.contract import TARGET
    from housing.registry import GateConfig, log_and_register

    meta = json.loads((bundle / "model.json").read_text())
    return log_and_register(
        sk_model=load_bundle(bundle).model,
        bundle_dir=bundle,
        params={"seed": 42},
        metrics={"r2": r2, "rmse": rmse},
        tags={
            "git_commit": commit,
            "data_md5": meta["data_md5"],
            "serving_sha256": meta["serving_sha256"],
        },
        plots=[],
        description="serve test",
        input_example=train.drop(columns=[TARGET]).head(3),
        gates=GateConfig(min_r2=0.0, max_rmse=1e9),
        force_promote_reason="test: move the alias" if promote else None,
        trusted_types=list(TRUSTED_TYPES),
        tracking_uri=uri,
    )


def root_conftest() -> Any:
    """tests/conftest.py as a module (its helpers, e.g. write_bundle, are plain functions).

    Every conftest is imported as `conftest`, so the root one is loaded again by path.
    """
    name = "_housing_tests_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tests" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


@dataclass
class GcsEmulator:
    endpoint: str
    port: int

    def filesystem(self) -> Any:
        import gcsfs

        return gcsfs.GCSFileSystem(
            endpoint_url=self.endpoint, token="anon", skip_instance_cache=True, cache_timeout=0
        )

    def upload_bundle(self, bundle: Path, bucket: str, prefix: str, **record: Any) -> None:
        """Publish ``bundle`` as a champion (promoted by write_champion unless it is one),
        the promotion record last, as scripts/publish_model.py does."""
        import tempfile

        fs = self.filesystem()
        if bucket not in {b.rstrip("/") for b in fs.ls("")}:
            fs.mkdir(bucket)
        with tempfile.TemporaryDirectory() as tmp:
            champion = copy_bundle(bundle, Path(tmp) / "champion", **record)
            serving = sorted(f"serving/{p.name}" for p in (champion / "serving").iterdir())
            names = ["model.json", *serving]
            if (champion / "model.sig").is_file():
                names.append("model.sig")
            for name in (*names, "promotion.json"):  # the record last: readers fingerprint it
                fs.pipe_file(f"{bucket}/{prefix}/{name}", (champion / name).read_bytes())


# --- real uvicorn ------------------------------------------------------------------------


@dataclass
class RunningServer:
    proc: subprocess.Popen
    base_url: str
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def server_env(**env: str) -> dict[str, str]:
    """The environment of a server under test: ours plus thread pins, no stray settings."""
    out = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MLFLOW_TRACKING_URI", "GCS_BUCKET", "ADMIN_TOKEN", "MODEL_SOURCES"}
    }
    out |= {
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
        "PYTHONUNBUFFERED": "1",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "SHUTDOWN_GRACE_S": "0",  # stop at once (the drain tests set their own grace)
    }
    return out | env


@contextlib.contextmanager
def running_uvicorn(
    tmp: Path, argv: list[str] | None = None, *, wait_ready: bool = True, **env: str
) -> Iterator[RunningServer]:
    """Start `python -m uvicorn serve.main:app` (or ``argv``) on a free port; stop it by pid."""
    port = free_port()
    argv = argv or [
        sys.executable,
        "-m",
        "uvicorn",
        "serve.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {"PORT": str(port), **env}
    log = tmp / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=server_env(**env), stdout=out, stderr=subprocess.STDOUT
        )
    server = RunningServer(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_for_port(port, START_TIMEOUT_S, proc)
        if wait_ready:
            deadline = time.monotonic() + START_TIMEOUT_S
            while httpx.get(f"{server.base_url}/ready", timeout=5).status_code != 200:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server never became ready:\n{server.logs()[-3000:]}")
                time.sleep(0.1)
        yield server
    finally:
        stop_process(proc)


def settings_for(bundle_dir: Path, **overrides: Any) -> Settings:
    """Test settings serving ``bundle_dir`` from the local source."""
    return make_settings(local_model_dir=bundle_dir, **overrides)
