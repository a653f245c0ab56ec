"""Fixtures of the image tests: the three images, built once per session by scripts/images.

No podman here is a failure, not a skip: `.ci/run` must say so loudly (scripts/images installs
podman from Debian's packages first, so a failure means it cannot run on this machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts.images.build import Built, as_dicts, build_all, report
from scripts.images.podman import PodmanError, podman

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "test-output" / "images.json"


@pytest.fixture(scope="session")
def images() -> dict[str, Built]:
    """The pipeline, API and app images, built with the layer cache (as `make images` does)."""
    try:
        built = build_all()
    except PodmanError as exc:
        pytest.fail(f"the container images cannot be built here: {exc}", pytrace=False)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(as_dicts(built), indent=2), encoding="utf-8")
    # Visible in the pytest output with -rA / in the log: the sizes and build times.
    with contextlib.suppress(OSError):
        os.write(2, ("\n" + report(built) + "\n").encode())
    return {b.name: b for b in built}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def run_container() -> Iterator[Callable[..., str]]:
    """Start detached containers named for this test; remove them (and only them) afterwards."""
    names: list[str] = []

    def start(image: str, *args: str, name: str | None = None, command: tuple = ()) -> str:
        name = name or f"housing-test-{uuid.uuid4().hex[:8]}"
        names.append(name)
        podman("run", "-d", "--name", name, *args, image, *command)
        return name

    yield start
    for name in names:
        podman("rm", "-f", "-t", "5", name, check=False, timeout=60)


def logs(name: str) -> str:
    done = podman("logs", "--tail", "60", name, check=False, timeout=30)
    return (done.stdout + done.stderr)[-4000:]
