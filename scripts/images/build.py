"""Build the pipeline, API and app images from their Dockerfiles with podman; time and size them.

Layers are cached by podman (the dependency layer changes only with uv.lock), and uv's
download cache is a build cache mount shared by the three builds. The host's CA bundle is
mounted over the base's own bundle for the build only: where TLS to the package index is
intercepted, pip and uv need it, and a `-v` mount is never committed to a layer.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from scripts.images.base import Base, choose_base
from scripts.images.podman import CONF_PATH, REPO_ROOT, PodmanError, ensure_podman, podman

logger = logging.getLogger(__name__)

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE_CA = "/etc/ssl/certs/ca-certificates.crt"  # the Dockerfiles' default CA_BUNDLE
# buildah keeps `RUN --mount=type=cache,id=housing-uv` here (root); a cold build clears it.
UV_BUILD_CACHE = Path("/var/tmp/buildah-cache/housing-uv")
LOG_DIR = CONF_PATH.parent / "logs"
BUILD_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class ImageSpec:
    name: str
    dockerfile: str
    tag: str


IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("pipeline", "Dockerfile", "localhost/housing-pipeline:latest"),
        ImageSpec("api", "serve/Dockerfile", "localhost/housing-api:latest"),
        ImageSpec("app", "app/Dockerfile", "localhost/housing-app:latest"),
    )
}


@dataclass(frozen=True)
class Built:
    """One image built: its tag, the base it was built on, seconds taken and size in bytes."""

    name: str
    tag: str
    base: str
    seconds: float
    size_bytes: int
    base_reason: str = ""
    image_id: str = ""  # what this build produced, whoever retags `tag` afterwards

    @property
    def ref(self) -> str:
        """The image to run: its ID when known (another checkout may rebuild the same tag)."""
        return self.image_id or self.tag

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def build_image(spec: ImageSpec, base: Base, *, no_cache: bool = False) -> Built:
    """`podman build` one image (docker format: OCI images drop HEALTHCHECK); log to a file."""
    args = ["build", "--format", "docker", "--network", "host", "--layers"]
    args += ["--build-arg", f"BASE_IMAGE={base.image}", "-f", spec.dockerfile, "-t", spec.tag]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    iidfile = LOG_DIR / f"{spec.name}.iid"
    iidfile.unlink(missing_ok=True)
    args += ["--iidfile", str(iidfile)]
    if HOST_CA.is_file():
        args += ["-v", f"{HOST_CA}:{IMAGE_CA}:ro"]
    if no_cache:
        args.append("--no-cache")
    log = LOG_DIR / f"{spec.name}.log"
    start = time.monotonic()
    done = podman(*args, str(REPO_ROOT), check=False, timeout=BUILD_TIMEOUT_S, log=log)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PodmanError(f"building {spec.tag} failed ({done.returncode}): {last[0]}; see {log}")
    image_id = iidfile.read_text(encoding="utf-8").strip().removeprefix("sha256:")
    size = image_size(image_id)
    built = Built(spec.name, spec.tag, base.image, seconds, size, base.reason, image_id)
    logger.info("built %s in %.1f s, %.0f MB", spec.tag, built.seconds, built.size_mb)
    return built


def build_all(names: Sequence[str] = tuple(IMAGES), *, cold: bool = False) -> list[Built]:
    """Install/configure podman, choose the base, build ``names``; ``cold`` drops every cache."""
    unknown = sorted(set(names) - set(IMAGES))
    if unknown:
        raise PodmanError(f"unknown image {', '.join(unknown)} (known: {', '.join(IMAGES)})")
    ensure_podman()
    base = choose_base()
    logger.info("base image: %s (%s)", base.image, base.reason)
    if cold:
        shutil.rmtree(UV_BUILD_CACHE, ignore_errors=True)
    return [build_image(IMAGES[name], base, no_cache=cold) for name in names]


def report(built: Sequence[Built]) -> str:
    """A Markdown table of the images built (for the log and docs/cicd.md)."""
    rows = [f"Base: {built[0].base} ({built[0].base_reason})", ""] if built else []
    rows += ["| image | tag | base | build s | size MB |", "|---|---|---|---|---|"]
    rows += [
        f"| {b.name} | `{b.tag}` | `{b.base}` | {b.seconds:.1f} | {b.size_mb:.0f} |" for b in built
    ]
    rows.append(f"| total | | | {sum(b.seconds for b in built):.1f} | |")
    return "\n".join(rows)


def as_dicts(built: Sequence[Built]) -> list[dict[str, object]]:
    return [{**asdict(b), "size_mb": round(b.size_mb, 1)} for b in built]
