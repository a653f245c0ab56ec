"""Helpers for the DVC-remote tests: a GCS emulator, clones wired to it, workspace snapshots.

Every clone points the committed `gcs` remote at the emulator through `.dvc/config.local`,
exactly as a user would for local testing; the committed `.dvc/config` stays untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline_support import git

TESTS_DIR = Path(__file__).resolve().parents[1]
REMOTE = "gcs"
STORE = "dvcstore"
# DVC would otherwise try to send usage analytics (no network here).
DVC_ENV = {"DVC_NO_ANALYTICS": "1"}


def serve_support() -> ModuleType:
    """tests/serve/serve_support.py (emulator handle, free ports, real uvicorn), by path."""
    name = "serve_support"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS_DIR / "serve" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@contextlib.contextmanager
def running_emulator(log: Path) -> Iterator[Any]:
    """`gcp-storage-emulator` in memory on a free loopback port; stopped by pid on exit."""
    support = serve_support()
    port = support.free_port()
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        support.wait_for_port(port, 60, proc)
        yield support.GcsEmulator(f"http://127.0.0.1:{port}", port)
    finally:
        support.stop_process(proc)


def create_bucket(emulator: Any, bucket: str) -> None:
    emulator.filesystem().mkdir(bucket)


def point_remote(repo: Path, endpoint: str, bucket: str) -> None:
    """Write `.dvc/config.local` so the `gcs` remote uses ``bucket`` on ``endpoint``."""
    (repo / ".dvc" / "config.local").write_text(
        f"['remote \"{REMOTE}\"']\n"
        f"    url = gs://{bucket}/{STORE}\n"
        f"    endpointurl = {endpoint}\n"
        "    allow_anonymous_login = true\n"
    )


def clone(origin: Path, dest: Path, endpoint: str, bucket: str) -> Path:
    """A fresh `git clone` of ``origin`` (no DVC cache, no outputs) wired to the emulator."""
    subprocess.run(["git", "clone", "-q", str(origin), str(dest)], check=True)
    point_remote(dest, endpoint, bucket)
    return dest


def remote_object(bucket: str, md5: str) -> str:
    """Where DVC 3 stores a file of this md5 in the remote (content-addressed)."""
    return f"{bucket}/{STORE}/files/md5/{md5[:2]}/{md5[2:]}"


def md5_file(path: Path) -> str:
    digest = hashlib.md5()  # DVC content address, not security
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def out_md5_matches(repo: Path, path: str, md5: str) -> bool:
    """Whether the workspace output ``path`` has the md5 ``dvc.lock`` records for it.

    A file is hashed directly; a directory output (md5 ``….dir``) is checked file by file
    against the listing DVC keeps for it in the repository's cache.
    """
    target = repo / path
    if not md5.endswith(".dir"):
        return target.is_file() and md5_file(target) == md5
    listing = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    expected = {entry["relpath"]: entry["md5"] for entry in json.loads(listing.read_text())}
    actual = {
        f.relative_to(target).as_posix(): md5_file(f) for f in target.rglob("*") if f.is_file()
    }
    return actual == expected


def snapshot(repo: Path) -> dict[str, str]:
    """md5 of every workspace file (outside .git and .dvc), to prove a command changed none."""
    out = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[0] in {".git", ".dvc"} or not path.is_file():
            continue
        out[rel.as_posix()] = md5_file(path)
    return out


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()
