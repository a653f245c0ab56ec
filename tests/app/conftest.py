"""Fixtures for the Streamlit app: a stub API over real HTTP and an AppTest pointed at it."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from app_stub import StubApi
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_MAIN = REPO_ROOT / "app" / "main.py"

# `app` is a top-level folder, not an installed package: make it importable however pytest
# was launched (`pytest` does not put the working directory on sys.path; `python -m` does).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture
def stub() -> Iterator[StubApi]:
    """A stub prediction API on a fresh 127.0.0.1 port, stopped after the test."""
    server = StubApi().start()
    yield server
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch):
    """Build an AppTest of app/main.py talking to ``api_url``, with empty caches."""

    def _make(api_url: str, **env: str) -> AppTest:
        monkeypatch.setenv("API_URL", api_url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        st.cache_data.clear()
        return AppTest.from_file(str(APP_MAIN), default_timeout=30)

    yield _make
    st.cache_data.clear()


@pytest.fixture(scope="module")
def real_api(champion_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real API (uvicorn serve.main:app) on 127.0.0.1 serving a small real bundle."""
    from app_servers import REAL_API_MAX_BATCH, api_command, free_port, running

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "MODEL_SOURCES": "local",
        "LOCAL_MODEL_DIR": str(champion_dir),
        "MAX_BATCH": str(REAL_API_MAX_BATCH),
        "RELOAD_INTERVAL_S": "0",
        "WANDB_MODE": "disabled",
    }
    log = tmp_path_factory.mktemp("real-api") / "api.log"
    with running(api_command(port), env=env, health_url=f"{url}/ready", log=log):
        yield url
