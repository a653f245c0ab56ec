"""Settings from the environment: names, comma lists, blanks, defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serve.config import Settings


def test_defaults_without_environment(monkeypatch):
    for name in (
        "MODEL_SOURCES",
        "MLFLOW_TRACKING_URI",
        "PORT",
        "HOST",
        "CORS_ORIGINS",
        "WANDB_MODE",
        "ADMIN_TOKEN",
        "MAX_BATCH",
    ):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert s.model_sources == ("registry", "gcs", "local")
    assert (s.host, s.port, s.max_batch) == ("127.0.0.1", 8000, 1000)
    assert s.cors_origins == ("http://localhost:8501", "http://127.0.0.1:8501")
    assert s.wandb_mode == "offline" and s.admin_token is None
    assert not s.registry_configured


def test_environment_names_and_comma_lists(monkeypatch):
    monkeypatch.setenv("MODEL_SOURCES", "gcs, local")
    monkeypatch.setenv("CORS_ORIGINS", "http://a:1,http://b:2")
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("MAX_BATCH", "10")
    monkeypatch.setenv("ADMIN_TOKEN", "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    s = Settings(_env_file=None)
    assert s.model_sources == ("gcs", "local")
    assert s.cors_origins == ("http://a:1", "http://b:2")
    assert (s.port, s.max_batch, s.admin_token) == (9001, 10, None)
    assert not s.registry_configured  # registry not in MODEL_SOURCES
    monkeypatch.setenv("MODEL_SOURCES", "registry")
    assert Settings(_env_file=None).registry_configured


def test_env_file_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("MAX_BATCH", raising=False)
    (tmp_path / ".env").write_text("MAX_BATCH=17\n")
    assert Settings(_env_file=tmp_path / ".env").max_batch == 17


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODEL_SOURCES", "registry,ftp"),
        ("PORT", "0"),
        ("WANDB_MODE", "loud"),
        ("GIL_SWITCH_INTERVAL_MS", "0"),
    ],
)
def test_bad_values_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_graceful_drain_is_on_by_default_in_settings_image_and_compose(monkeypatch, repo_root):
    import re

    import yaml

    monkeypatch.delenv("SHUTDOWN_GRACE_S", raising=False)
    grace = Settings(_env_file=None).shutdown_grace_s
    assert grace > 0
    dockerfile = (repo_root / "serve" / "Dockerfile").read_text()
    match = re.search(r"SHUTDOWN_GRACE_S=([0-9.]+)", dockerfile)
    assert match and float(match.group(1)) > 0
    api = yaml.safe_load((repo_root / "docker-compose.yaml").read_text())["services"]["api"]
    compose_grace = float(api["environment"]["SHUTDOWN_GRACE_S"])
    assert compose_grace > 0
    stop = api["stop_grace_period"]
    assert stop.endswith("s") and float(stop[:-1]) > compose_grace + 30  # + uvicorn's 30 s


def test_the_app_sets_the_gil_switch_interval(champion_dir):
    """A process-wide setting, applied at start-up (Python's own default is 5 ms)."""
    import sys

    from fastapi.testclient import TestClient
    from serve_support import settings_for

    from serve.main import create_app

    before = sys.getswitchinterval()
    try:
        with TestClient(create_app(settings_for(champion_dir, gil_switch_interval_ms=2.5))):
            assert sys.getswitchinterval() == pytest.approx(0.0025)
    finally:
        sys.setswitchinterval(before)
