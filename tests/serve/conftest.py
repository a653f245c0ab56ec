"""Fixtures for the API tests: bundles, an in-process client, a GCS emulator for the session.

The emulator fixture starts `gcp-storage-emulator` on a free loopback port and stops it by
pid; reuse the pattern (and `serve_support.GcsEmulator`) for other gs:// tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serve_support import (
    GcsEmulator,
    free_port,
    make_settings,
    root_conftest,
    stop_process,
    wait_for_port,
)

from serve.main import create_app


@pytest.fixture(scope="session")
def bundle_v2(tmp_path_factory: pytest.TempPathFactory, small_train) -> Path:
    """A second real bundle with different bytes (another sample), e.g. for hot reload."""
    write_bundle = root_conftest().write_bundle
    train = small_train.sample(frac=0.9, random_state=3).reset_index(drop=True)
    return write_bundle(tmp_path_factory.mktemp("bundle_v2"), train, seed=7)


@pytest.fixture(scope="module")
def client(champion_dir: Path) -> Iterator[TestClient]:
    """An in-process client of an app serving the session's small champion (read-only tests)."""
    app = create_app(make_settings(local_model_dir=champion_dir))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def example(model_bundle_dir: Path) -> dict[str, Any]:
    """The contract's real example district (nine fields)."""
    return dict(json.loads((model_bundle_dir / "model.json").read_text())["contract"]["example"])


# --- GCS emulator ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """`gcp-storage-emulator` in memory on a free loopback port, for the whole session."""
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    port = free_port()
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    log = tmp_path_factory.mktemp("gcs") / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, 60, proc)
        yield GcsEmulator(f"http://127.0.0.1:{port}", port)
    finally:
        stop_process(proc)
