"""Kubernetes manifests under deploy/: valid against the API schemas, and one recipe with compose.

kubernetes-validate bundles the Kubernetes JSON schemas (one directory per API version) in its
package, so validation needs no cluster and no network; the schema version is pinned here and
validation is strict (an unknown field fails, as it would with server-side field validation).
"""

from __future__ import annotations

import copy
import re
import socket
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from ci_tools import COMPOSE, REPO_ROOT
from dockerfile_support import instructions

# Kubernetes manifests only: deploy/prometheus/ holds Prometheus files (tests/deploy checks them).
KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
MANIFESTS = sorted([*KUBERNETES.rglob("*.yaml"), *KUBERNETES.rglob("*.yml")])
SWEEP_WORKERS = KUBERNETES / "sweep-workers.yaml"
# Pinned, so a kubernetes-validate upgrade cannot change what is checked: an older minor than
# the newest bundled (1.37), since clusters lag; the newest fields used (ttlSecondsAfterFinished)
# are GA since 1.23. Each manifest is also checked against the newest schemas bundled.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _by_kind(path: Path, kind: str) -> dict[str, Any]:
    [doc] = [doc for doc in _documents(path) if doc["kind"] == kind]
    return doc


def _job_container() -> tuple[dict[str, Any], dict[str, Any]]:
    job = _by_kind(SWEEP_WORKERS, "Job")
    [container] = job["spec"]["template"]["spec"]["containers"]
    return job, container


def _expanded(args: list[str], env: list[dict[str, Any]]) -> list[str]:
    """``$(VAR)`` replaced by the container's plain env values, as the kubelet does."""
    values = {e["name"]: e["value"] for e in env if "value" in e}
    return [
        re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: values[m.group(1)], a) for a in args
    ]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access during validation: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_deploy_holds_manifests() -> None:
    assert SWEEP_WORKERS in MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_manifest_validates_against_the_kubernetes_schemas(path: Path, no_network) -> None:
    docs = _documents(path)
    assert docs, f"{path} has no resources"
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            # Raises on an invalid resource, and on a kind or apiVersion it has no schema for.
            validated = kubernetes_validate.validate(doc, version, strict=True)
            assert validated == version.rsplit(".", 1)[0], (doc["kind"], version, validated)


def _misspell_command(job: dict[str, Any]) -> None:
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["commmand"] = container.pop("command")


def _parallelism_as_text(job: dict[str, Any]) -> None:
    job["spec"]["parallelism"] = "four"


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (_misspell_command, "Additional properties are not allowed"),
        (_parallelism_as_text, "'four' is not of type 'integer'"),
    ],
)
def test_validation_is_strict_and_typed(break_it, message: str, no_network) -> None:
    """The validator really checks: a misspelt field or a wrong type is refused."""
    job = copy.deepcopy(_by_kind(SWEEP_WORKERS, "Job"))
    break_it(job)
    with pytest.raises(kubernetes_validate.ValidationError, match=message):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[0], strict=True)


def test_sweep_workers_is_a_parallel_job_that_restarts_failures() -> None:
    job, container = _job_container()
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["parallelism"] >= 2
    # A work queue (no completions: done when one worker succeeded and all ended) or N of N.
    assert spec.get("completions") in (None, spec["parallelism"])
    assert spec["backoffLimit"] >= 1
    assert spec["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind


def test_sweep_workers_run_the_compose_worker_in_the_pipeline_image() -> None:
    _, container = _job_container()
    worker = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["sweep-worker"]
    # Same image as compose's sweep-worker, which builds the root Dockerfile (the pipeline's).
    assert worker["build"]["dockerfile"] == "Dockerfile"
    assert container["image"] == worker["image"]
    command = _expanded(container["command"] + container.get("args", []), container["env"])
    assert command[:2] == ["housing-sweep", "worker"] == worker["command"][:2]
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["housing-sweep"] == "housing.sweep.cli:main"
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert set(options) == {"--storage", "--study"}
    assert options["--study"], "the study name is set"
    # The same database and user as compose, the host aside; never a password in the URL.
    k8s_url, compose_url = urlsplit(options["--storage"]), urlsplit(worker["command"][3])
    assert worker["command"][2] == "--storage"
    for url in (k8s_url, compose_url):
        assert url.scheme == "postgresql+psycopg" and url.password is None
    assert (k8s_url.username, k8s_url.path) == (compose_url.username, compose_url.path)
    assert (k8s_url.username, k8s_url.path) == ("optuna", "/optuna")


def test_sweep_workers_read_the_password_from_a_secret() -> None:
    _, container = _job_container()
    env = {e["name"]: e for e in container["env"]}
    ref = env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "housing-optuna-db", "key": "password"}
    assert "value" not in env["PGPASSWORD"]
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
    for name, entry in env.items():
        if secret_like.search(name):
            assert "value" not in entry, f"{name} is a literal"
    # The Secret's shape is documented in the manifest, its value nowhere.
    text = SWEEP_WORKERS.read_text(encoding="utf-8")
    assert "name: housing-optuna-db" in text and "key: password" in text


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_manifests_hold_no_credentials(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"://[^/\s@:]+:[^/\s@]+@", text), "a password inside a URI"
    for doc in _documents(path):
        # A Secret object in the repository would hold (or, applied, overwrite) the value.
        assert doc["kind"] != "Secret", f"{path}: create the Secret outside the repository"


def test_sweep_workers_run_as_the_image_user_without_privileges() -> None:
    job, container = _job_container()
    pod = job["spec"]["template"]["spec"]["securityContext"]
    final_user = [arg for kw, arg in instructions(REPO_ROOT / "Dockerfile") if kw == "USER"][-1]
    assert f"{pod['runAsUser']}:{pod['runAsGroup']}" == final_user
    assert pod["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    # The checkout (params, data) is read-only; the image's WORKDIR is where it is mounted.
    workdir = [arg for kw, arg in instructions(REPO_ROOT / "Dockerfile") if kw == "WORKDIR"][-1]
    assert mounts[workdir]["readOnly"] is True
