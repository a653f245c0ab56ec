"""scripts/images without podman: a machine that cannot run it fails with a one-line reason."""

from __future__ import annotations

import subprocess

import pytest
from container_support import forbidden_reasons

from scripts.images import podman as podman_mod
from scripts.images.build import IMAGES, Built, build_all, report


def test_missing_podman_without_apt_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setattr(podman_mod.shutil, "which", lambda name: None)
    with pytest.raises(podman_mod.PodmanError, match=r"^podman, runc, debootstrap missing") as err:
        podman_mod.ensure_installed()
    assert "\n" not in str(err.value)


def test_a_podman_that_cannot_start_is_an_error_not_a_skip(monkeypatch) -> None:
    def no_binary(*args, **kwargs):
        raise FileNotFoundError("podman")

    monkeypatch.setattr(podman_mod.subprocess, "run", no_binary)
    with pytest.raises(podman_mod.PodmanError, match="podman is not installed"):
        podman_mod.podman("info")


def test_podman_failure_quotes_its_last_line(monkeypatch) -> None:
    def failed(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 125, "", "warning\nError: runc create failed\n")

    monkeypatch.setattr(podman_mod.subprocess, "run", failed)
    with pytest.raises(podman_mod.PodmanError, match=r"exited 125: Error: runc create failed$"):
        podman_mod.podman("run", "x")


def test_unknown_image_names_are_refused_before_podman_runs() -> None:
    with pytest.raises(podman_mod.PodmanError, match="unknown image web"):
        build_all(["api", "web"])


def test_the_conf_lifts_no_ulimits_and_picks_runc(tmp_path) -> None:
    conf = podman_mod.write_conf(tmp_path / "containers.conf").read_text()
    assert "default_ulimits = []" in conf and 'runtime = "runc"' in conf


def test_report_names_the_base_and_every_image() -> None:
    built = [
        Built(name, spec.tag, "localhost/housing-base:bookworm", 1.5, 2_000_000, "why")
        for name, spec in IMAGES.items()
    ]
    text = report(built)
    assert text.startswith("Base: localhost/housing-base:bookworm (why)")
    assert all(f"| {name} |" in text for name in IMAGES) and "| total | | | 4.5 |" in text


@pytest.mark.parametrize(
    "path",
    [
        "app/tests/test_page.py",
        "workspace/tests/conftest.py",
        "workspace/data/raw/housing.csv",
        "app/housing.csv",
        "workspace/models/model.skops",
        "workspace/.dvc/cache/files/md5/ab/cdef",
        "workspace/.git/HEAD",
        "opt/venv/lib/python3.11/site-packages/housing/__pycache__/io.cpython-311.pyc",
        "app/app/__pycache__/main.cpython-311.pyc",
        "app/.env",
        "home/app/signing-key.pem",
        "keys/signing-key.pub",
        "root/.cache/uv/wheels-v5/x.whl",
        "home/pipeline/.cache/pip/http-v2/a/b",
        "opt/uv/bin/uv",
        "workspace/mlflow.db",
        "tmp/requirements.txt",
    ],
)
def test_the_content_check_refuses(path: str) -> None:
    assert forbidden_reasons(path), f"{path} would pass the image content check"


@pytest.mark.parametrize(
    "path",
    [
        "opt/venv/lib/python3.11/site-packages/certifi/cacert.pem",
        "opt/venv/lib/python3.11/site-packages/numpy/tests/test_numeric.py",
        "opt/venv/lib/python3.11/site-packages/housing/io.py",
        "etc/ssl/certs/ca-certificates.crt",
        "app/app/main.py",
        "workspace/stages/split.py",
        "workspace/.dvc/config",
    ],
)
def test_the_content_check_accepts(path: str) -> None:
    assert not forbidden_reasons(path)
