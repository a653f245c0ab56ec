"""How the Dockerfiles take their base and their CA, checked without building (default tier)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dockerfile_support import instructions as _instructions

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile", "serve/Dockerfile", "app/Dockerfile"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_is_a_build_arg_defaulting_to_python_slim(name: str) -> None:
    pairs = _instructions(REPO_ROOT / name)
    assert pairs[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    froms = [arg for kw, arg in pairs if kw == "FROM"]
    assert len(froms) == 2 and all(arg.startswith("${BASE_IMAGE} AS ") for arg in froms)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_ca_reaches_the_install_step_only(name: str) -> None:
    """The CA path is a build arg used inline by the installing RUNs, never ENV, COPY or ADD."""
    pairs = _instructions(REPO_ROOT / name)
    for kw, arg in pairs:
        if kw in {"ENV", "COPY", "ADD"}:
            assert not re.search(r"SSL_CERT_FILE|PIP_CERT|REQUESTS_CA|\.crt\b|\.pem\b", arg), arg
    installs = [
        arg for kw, arg in pairs if kw == "RUN" and re.search(r"\b(pip|uv pip) install", arg)
    ]
    assert installs
    for arg in installs:
        assert re.search(r'(PIP_CERT|SSL_CERT_FILE)="\$CA_BUNDLE"', arg), arg
    assert ("ARG", "CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt") in pairs


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dependencies_install_with_uv_from_the_export_into_a_cache_mount(name: str) -> None:
    pairs = _instructions(REPO_ROOT / name)
    deps = next(arg for kw, arg in pairs if kw == "RUN" and "-r /tmp/requirements.txt" in arg)
    assert "--mount=type=cache,id=housing-uv,target=/root/.cache/uv" in deps
    assert "uv pip install" in deps
    # The runtime stage takes the venv from the build stage, never the uv installer.
    runtime = pairs[max(i for i, (kw, _) in enumerate(pairs) if kw == "FROM") :]
    copied = [arg for kw, arg in runtime if kw == "COPY" and "--from=build" in arg]
    assert copied and not any("/opt/uv" in arg for arg in copied)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_use_the_makefiles_uv(name: str) -> None:
    pinned = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert pinned, "Makefile pins no UV_VERSION"
    assert ("ARG", f"UV_VERSION={pinned[1]}") in _instructions(REPO_ROOT / name)


def test_the_api_image_takes_wandb_only_when_asked() -> None:
    """The API installs its pinned export with --no-deps (LightGBM's declared scipy stays
    out); WITH_WANDB=1, and only that, swaps in the export with the W&B prediction log."""
    pairs = _instructions(REPO_ROOT / "serve/Dockerfile")
    assert ("ARG", "WITH_WANDB=0") in pairs
    deps = next(arg for kw, arg in pairs if kw == "RUN" and "-r /tmp/requirements.txt" in arg)
    assert "uv pip install --no-deps -r /tmp/requirements.txt" in deps
    assert re.search(
        r'if \[ "\$WITH_WANDB" = "1" \]; then cp /tmp/requirements-wandb\.txt '
        r"/tmp/requirements\.txt; fi",
        deps,
    ), deps
    copied = next(arg for kw, arg in pairs if kw == "COPY" and "requirements" in arg)
    assert copied.split() == ["serve/requirements.txt", "serve/requirements-wandb.txt", "/tmp/"]
    for name in ("serve/requirements.txt", "serve/requirements-wandb.txt"):
        pins = [
            line
            for line in (REPO_ROOT / name).read_text(encoding="utf-8").splitlines()
            if line and not line.startswith((" ", "#"))
        ]
        # --no-deps installs exactly these: every one pinned to a version.
        assert pins and all("==" in line for line in pins), name
    wandb = (REPO_ROOT / "serve/requirements-wandb.txt").read_text(encoding="utf-8")
    assert "\nwandb==" in wandb
    assert "\nwandb==" not in (REPO_ROOT / "serve/requirements.txt").read_text(encoding="utf-8")
