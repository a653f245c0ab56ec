"""Helpers of the image tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import fnmatch
import socket

from scripts.images.podman import podman


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logs(name: str) -> str:
    done = podman("logs", "--tail", "60", name, check=False, timeout=30)
    return (done.stdout + done.stderr)[-4000:]


# Paths (relative to the image root) that must not be in any image.
FORBIDDEN = {
    "project tests": ["app/tests/*", "workspace/tests/*", "*/site-packages/tests/*"],
    "data files": ["app/*.csv", "workspace/*.csv", "workspace/data/*", "*/housing.csv"],
    "model artifacts": ["*.skops", "workspace/models/*", "app/models/*"],
    "DVC cache or temp": ["*/.dvc/cache/*", "*/.dvc/tmp/*", "*/.dvc/config.local"],
    "Git metadata": ["*/.git/*", "*/.git", ".git/*"],
    "project bytecode": [
        "app/*__pycache__*",
        "workspace/*__pycache__*",
        "*/site-packages/housing/*__pycache__*",
    ],
    "keys and secrets": ["*.key", "*/.env", ".env", "*/signing-key*", "*gcp-key*.json", "*id_rsa*"],
    "pip/uv caches": ["root/.cache/*", "home/*/.cache/*", "*/pip/http*/*", "*/uv/cache*"],
    "the uv installer": ["opt/uv/*"],
    "tracking stores": ["*/mlflow.db", "*/mlruns/*", "*/wandb/offline-run-*"],
    "build inputs": ["tmp/requirements.txt", "build/*"],
}
# The pipeline image's own machine-local DVC config: it only says the baked-in copy has no Git.
ALLOWED = {"workspace/.dvc/config.local": "[core]\n    no_scm = true\n"}
# PEM files that are public CA bundles of the base or of a package (certifi and the like).
PUBLIC_PEM = ["etc/ssl/*", "usr/share/ca-certificates/*", "usr/lib/ssl/*", "*/site-packages/*"]


def forbidden_reasons(rel: str) -> list[str]:
    """Why the image path ``rel`` (relative to /) must not be in an image; empty if it may."""
    reasons = [why for why, pats in FORBIDDEN.items() if any(fnmatch.fnmatch(rel, p) for p in pats)]
    if rel.endswith(".pem") and not any(fnmatch.fnmatch(rel, p) for p in PUBLIC_PEM):
        reasons.append("private keys")
    return reasons
