"""Helpers of the image tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import socket

from scripts.images.podman import podman


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logs(name: str) -> str:
    done = podman("logs", "--tail", "60", name, check=False, timeout=30)
    return (done.stdout + done.stderr)[-4000:]
