"""The compose stack (docker-compose.yaml) under podman-compose, as tests/containers runs it.

Images: the four the compose file names (`housing-postgres:15` via POSTGRES_IMAGE,
`housing-mlflow:local`, `housing-api:local`, `housing-app:local`) are built with
scripts/images' podman invocation and base (python:3.11-slim when it can be pulled, else the
local debootstrap bookworm base), so `podman-compose up` finds them and builds nothing.

Networking: podman 4.3 here uses CNI; service-name DNS on a compose network needs CNI's
`dnsname` plugin (Debian's golang-github-containernetworking-plugin-dnsname, with dnsmasq),
installed here when missing. With it, the compose file runs unchanged (no override file).

    python -m scripts.compose_stack build [--cold]   # build the stack's images, print times
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.images.base import choose_base
from scripts.images.build import (
    IMAGES,
    UV_BUILD_CACHE,
    Built,
    ImageSpec,
    build_image,
    report,
)
from scripts.images.podman import REPO_ROOT, PodmanError, ensure_podman, podman, podman_env

logger = logging.getLogger(__name__)

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
POSTGRES_TAG = "localhost/housing-postgres:15"
# The compose file's image names (short names resolve to localhost/ in podman).
STACK_IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("postgres", "docker/postgres/Dockerfile", POSTGRES_TAG),
        ImageSpec("mlflow", "docker/mlflow/Dockerfile", "localhost/housing-mlflow:local"),
        ImageSpec("api", IMAGES["api"].dockerfile, "localhost/housing-api:local"),
        ImageSpec("app", IMAGES["app"].dockerfile, "localhost/housing-app:local"),
    )
}
DNSNAME_PLUGIN = Path("/usr/lib/cni/dnsname")
DNSNAME_PACKAGE = "golang-github-containernetworking-plugin-dnsname"
COMPOSE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class StackImages:
    built: list[Built]
    base: str
    base_reason: str

    def env(self) -> dict[str, str]:
        """What the compose file must be told to use these images."""
        return {"POSTGRES_IMAGE": POSTGRES_TAG, "BASE_IMAGE": self.base}


def ensure_dnsname() -> None:
    """CNI's dnsname plugin: service-name DNS on podman-compose's network (CNI backend)."""
    backend = podman("info", "--format", "{{.Host.NetworkBackend}}", timeout=60).stdout.strip()
    if backend != "cni" or DNSNAME_PLUGIN.exists():
        return  # netavark brings aardvark-dns itself
    if shutil.which("apt-get") is None:
        raise PodmanError(f"{DNSNAME_PLUGIN} missing and no apt-get to install {DNSNAME_PACKAGE}")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", DNSNAME_PACKAGE],
    ):
        done = subprocess.run([*sudo, *args], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PodmanError(f"`{' '.join(args)}` failed ({done.returncode}): {tail[0]}")


def build_stack(names: Sequence[str] = tuple(STACK_IMAGES), *, cold: bool = False) -> StackImages:
    """Podman (+ dnsname), the base, then the stack's images, with scripts/images' flags."""
    ensure_podman()
    ensure_dnsname()
    base = choose_base()
    logger.info("base image: %s (%s)", base.image, base.reason)
    if cold:
        shutil.rmtree(UV_BUILD_CACHE, ignore_errors=True)
    built = [build_image(STACK_IMAGES[name], base, no_cache=cold) for name in names]
    return StackImages(built, base.image, base.reason)


def compose_command() -> list[str]:
    """podman-compose from this environment (a dev dependency), else from PATH."""
    local = Path(sys.executable).with_name("podman-compose")
    found = str(local) if local.exists() else shutil.which("podman-compose")
    if found is None:
        raise PodmanError("podman-compose is not installed (`make install` installs it)")
    return [found]


def compose(
    project: str,
    env_file: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = COMPOSE_TIMEOUT_S,
    check: bool = True,
    files: Sequence[Path] = (COMPOSE_FILE,),
    profiles: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """`podman-compose -p PROJECT --env-file ENV_FILE -f docker-compose.yaml ARGS`, run in
    the first file's directory (the project directory its relative paths name)."""
    cmd = [*compose_command(), "-p", project, "--env-file", str(env_file)]
    for file in files:
        cmd += ["-f", str(file)]
    for profile in profiles:
        cmd += ["--profile", profile]
    cmd += list(args)
    run_env = {**podman_env(), **(env or {})}
    # podman-compose calls plain `podman`: the runtime comes from containers.conf ([engine]).
    try:
        done = subprocess.run(
            cmd,
            cwd=Path(files[0]).parent,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PodmanError(f"`podman-compose {' '.join(args)}` timed out after {timeout} s") from exc
    if check and done.returncode != 0:
        lines = (done.stderr + done.stdout).strip().splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        tail = (errors or lines)[-3:] or ["no output"]
        raise PodmanError(
            f"`podman-compose {' '.join(args)}` exited {done.returncode}: " + " | ".join(tail)
        )
    return done


def leftovers(project: str) -> dict[str, list[str]]:
    """Containers, pods, volumes and networks of ``project`` that podman still has."""
    label = f"label=io.podman.compose.project={project}"
    found = {
        "containers": podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout,
        "pods": podman("pod", "ps", "--filter", f"name={project}", "--format", "{{.Name}}").stdout,
        "volumes": podman("volume", "ls", "--filter", label, "--format", "{{.Name}}").stdout,
        "networks": podman("network", "ls", "--format", "{{.Name}}").stdout,
    }
    lists = {k: [n for n in v.split() if n] for k, v in found.items()}
    lists["networks"] = [n for n in lists["networks"] if n.startswith(f"{project}_")]
    # Also by name: a volume or container without the label but with the project's prefix.
    for kind, cmd in (
        ("containers", ("ps", "-a", "--format", "{{.Names}}")),
        ("volumes", ("volume", "ls", "--format", "{{.Name}}")),
    ):
        names = podman(*cmd).stdout.split()
        lists[kind] = sorted(set(lists[kind]) | {n for n in names if n.startswith(f"{project}_")})
    return {k: v for k, v in lists.items() if v}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.compose_stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the compose stack's images with podman")
    build.add_argument("names", nargs="*", help=f"any of {', '.join(STACK_IMAGES)}")
    build.add_argument("--cold", action="store_true", help="no layer cache, no uv cache")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    start = time.monotonic()
    try:
        stack = build_stack(args.names or list(STACK_IMAGES), cold=args.cold)
    except PodmanError as exc:
        logger.error("error: %s", exc)
        return 1
    sys.stdout.write(report(stack.built) + f"\nwall: {time.monotonic() - start:.1f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
