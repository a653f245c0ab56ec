"""Fixtures of the image tests: the three images, built once per session by scripts/images.

No podman here is a failure, not a skip: `.ci/run` must say so loudly (scripts/images installs
podman from Debian's packages first, so a failure means it cannot run on this machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.images.build import Built, as_dicts, build_all, report
from scripts.images.podman import PodmanError

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
    _REPORT.append(report(built))
    return {b.name: b for b in built}


_REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    """Image sizes and build times at the end of the run (the `.ci/run` log keeps them)."""
    for text in _REPORT:
        terminalreporter.section("container images")
        for line in text.splitlines():
            terminalreporter.write_line(line)
