"""The base image of every build: upstream `python:3.11-slim`, else a local Debian bookworm one.

No image registry answers on these machines, so the upstream image usually cannot be pulled;
then a minimal bookworm root file system is built with debootstrap (Debian's package mirror
does answer), given Python 3.11 with venv and a `python` command at /usr/local/bin/python as
in the upstream image, and imported as `localhost/housing-base:bookworm`. It is built once
and reused while it exists (`podman rmi` it to rebuild).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.images.podman import PodmanError, podman, write_conf

logger = logging.getLogger(__name__)

UPSTREAM_BASE = "docker.io/library/python:3.11-slim"
LOCAL_BASE = "localhost/housing-base:bookworm"
BASE_ENV = "HOUSING_BASE_IMAGE"  # force a base (an image podman has or can pull)
PULL_TIMEOUT_S = 60.0
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What python:3.11-slim offers that the Dockerfiles use: python with venv, CA certificates
# (pip and uv verify TLS), groupadd/useradd.
LOCAL_PACKAGES = ("python3.11", "python3.11-venv", "ca-certificates", "passwd")
# Bump when build_local_base changes: a cached base with another recipe is rebuilt.
RECIPE_LABEL = "org.housing.base-recipe"
RECIPE = "2"


@dataclass(frozen=True)
class Base:
    """The base image chosen and why (the reason goes to the log)."""

    image: str
    reason: str


def _exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def _recipe(image: str) -> str:
    fmt = f'{{{{index .Labels "{RECIPE_LABEL}"}}}}'
    return podman("image", "inspect", "--format", fmt, image, check=False).stdout.strip()


def build_local_base(name: str = LOCAL_BASE, mirror: str = DEBIAN_MIRROR) -> float:
    """debootstrap a bookworm minbase with Python 3.11 and `podman import` it; return seconds."""
    if shutil.which("debootstrap") is None:
        raise PodmanError("debootstrap is not installed (scripts/images installs it with apt)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="housing-base-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        # --include does not resolve every dependency (python3.11-venv's distutils): apt does.
        apt = "apt-get install -y -qq --no-install-recommends " + " ".join(LOCAL_PACKAGES)
        for cmd in (
            [*sudo, "debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
            [*sudo, "chroot", str(rootfs), "sh", "-c", f"apt-get update -qq && {apt}"],
        ):
            logger.info("local base: %s", " ".join(cmd))
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise PodmanError(f"`{' '.join(cmd[:3])}` failed ({done.returncode}): {tail[0]}")
        local_bin = rootfs / "usr/local/bin"
        local_bin.mkdir(parents=True, exist_ok=True)
        for link in ("python", "python3"):  # where python:3.11-slim has them
            (local_bin / link).unlink(missing_ok=True)
            (local_bin / link).symlink_to("/usr/bin/python3.11")
        # Package lists, apt's caches and downloaded .debs are not part of an image, nor are
        # documentation, manual pages and translations (python:3.11-slim drops them too);
        # podman supplies resolv.conf at run time (debootstrap copied the host's).
        (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
        for junk in (
            "var/cache/apt",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/info",
            "usr/share/locale",
        ):
            for path in (rootfs / junk).glob("*"):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                [
                    "podman",
                    "--runtime",
                    "runc",
                    "import",
                    "--change",
                    "ENV LANG=C.UTF-8",
                    "--change",
                    'CMD ["python"]',
                    "--change",
                    "LABEL org.opencontainers.image.description=debootstrap-bookworm-python3.11",
                    "--change",
                    f"LABEL {RECIPE_LABEL}={RECIPE}",
                    "-",
                    name,
                ],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                env={**os.environ, "CONTAINERS_CONF": str(write_conf())},
                check=False,
            )
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise PodmanError(f"podman import of the local base failed: {imported.stderr.strip()}")
    return time.monotonic() - start


def choose_base() -> Base:
    """The upstream base when present or pullable, else the local bookworm base (built once)."""
    forced = os.environ.get(BASE_ENV, "").strip()
    if forced:
        if not _exists(forced):
            podman("pull", forced, timeout=PULL_TIMEOUT_S * 5)
        return Base(forced, f"{BASE_ENV} is set")
    if _exists(UPSTREAM_BASE):
        return Base(UPSTREAM_BASE, "upstream python:3.11-slim is already in podman's storage")
    try:
        pulled = podman("pull", "-q", UPSTREAM_BASE, check=False, timeout=PULL_TIMEOUT_S)
    except PodmanError as exc:  # a pull that hangs counts as a pull that failed
        why = str(exc)
    else:
        if pulled.returncode == 0:
            return Base(UPSTREAM_BASE, "pulled upstream python:3.11-slim")
        why = (pulled.stderr.strip().splitlines() or ["no output"])[-1]
    if len(why) > 160:
        why = why[:157] + "..."
    if _exists(LOCAL_BASE) and _recipe(LOCAL_BASE) == RECIPE:
        return Base(LOCAL_BASE, f"python:3.11-slim cannot be pulled ({why}); local base cached")
    seconds = build_local_base()
    return Base(
        LOCAL_BASE,
        f"python:3.11-slim cannot be pulled ({why}); built the local debootstrap "
        f"bookworm base in {seconds:.0f} s",
    )
