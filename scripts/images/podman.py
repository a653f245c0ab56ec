"""Podman as this project runs it: Debian's podman + runc, and a containers.conf for the sandbox.

The machines CI runs on forbid raising RLIMIT_NOFILE/NPROC (so no default ulimits) and crun
fails on their cgroup layout (so runc). Everything else is podman's default, as root.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_PATH = REPO_ROOT / ".tools" / "podman" / "containers.conf"
DEBIAN_PACKAGES = ("podman", "runc", "debootstrap")
CONTAINERS_CONF = """\
# Written by scripts/images/podman.py: the sandbox forbids raising ulimits; crun fails here.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class PodmanError(RuntimeError):
    """Podman cannot be installed, configured or run here; the message is one line."""


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo"]


def ensure_installed(packages: Sequence[str] = DEBIAN_PACKAGES) -> None:
    """Install podman, runc and debootstrap from Debian's packages when a command is missing."""
    commands = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}
    missing = [p for p in packages if shutil.which(commands.get(p, p)) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise PodmanError(f"{', '.join(missing)} missing and no apt-get to install them")
    logger.info("installing %s from Debian's packages", " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        done = subprocess.run(
            [*_sudo(), *args], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PodmanError(f"`{' '.join(args)}` failed ({done.returncode}): {tail[0]}")


def write_conf(path: Path = CONF_PATH) -> Path:
    """The containers.conf every podman call here uses (via CONTAINERS_CONF)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != CONTAINERS_CONF:
        path.write_text(CONTAINERS_CONF, encoding="utf-8")
    return path


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(write_conf())}


def podman(
    *args: str,
    check: bool = True,
    timeout: float | None = None,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``podman --runtime runc ARGS``; raise PodmanError naming the command when ``check``.

    With ``log``, output streams to that file (a long build can be followed) instead of
    being captured; the error then quotes the file's last line.
    """
    cmd = ["podman", "--runtime", "runc", *args]
    try:
        if log is None:
            done = subprocess.run(
                cmd, env=podman_env(), capture_output=True, text=True, timeout=timeout, check=False
            )
        else:
            with log.open("w", encoding="utf-8") as out:
                done = subprocess.run(
                    cmd,
                    env=podman_env(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            done.stdout = log.read_text(encoding="utf-8", errors="replace")[-20_000:]
            done.stderr = ""
    except subprocess.TimeoutExpired as exc:
        raise PodmanError(f"`podman {' '.join(args[:3])} ...` timed out after {timeout} s") from exc
    except FileNotFoundError as exc:
        raise PodmanError("podman is not installed (scripts/images installs it with apt)") from exc
    if check and done.returncode != 0:
        last = ((done.stderr or "") + (done.stdout or "")).strip().splitlines()[-1:] or ["-"]
        raise PodmanError(f"`podman {' '.join(args[:3])} ...` exited {done.returncode}: {last[0]}")
    return done


def ensure_podman() -> None:
    """Install and configure podman, then prove it runs; raise PodmanError otherwise."""
    ensure_installed()
    done = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PodmanError(f"podman cannot run on this machine: {last[0]}")
