"""The GitHub workflows: actionlint, the workflow JSON schema, and the project's CI policy."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from ci_tools import REPO_ROOT, WORKFLOWS, run, tool

PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(?:[0-9a-f]{40}|v\d+\.\d+\.\d+)$")


def _load(path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the bare key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (job_id, step) for job_id, job in workflow["jobs"].items() for step in job.get("steps", [])
    ]


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    return _load(REPO_ROOT / ".github/workflows/pipeline.yml")


def test_there_are_workflows() -> None:
    assert REPO_ROOT / ".github/workflows/pipeline.yml" in WORKFLOWS


def test_actionlint_passes() -> None:
    done = run(tool("actionlint"), "-no-color", *map(str, WORKFLOWS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_match_the_github_workflow_schema() -> None:
    done = run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        *map(str, WORKFLOWS),
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned(path) -> None:
    uses = [step["uses"] for _, step in _steps(_load(path)) if "uses" in step]
    assert uses
    unpinned = [ref for ref in uses if not PINNED.match(ref)]
    assert unpinned == [], "pin actions to a full commit SHA or an exact vX.Y.Z tag"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_failures_fail_and_secrets_stay_out_of_scripts(path) -> None:
    for job_id, step in _steps(_load(path)):
        script = step.get("run", "")
        assert "|| true" not in script, f"{job_id}: a failing command must fail the job"
        assert "continue-on-error" not in step, f"{job_id}: continue-on-error hides failures"
        # Secrets reach commands only through env/with, never interpolated into the script.
        assert "secrets." not in script, f"{job_id}: secret interpolated into a run script"


def test_triggers_and_dispatch_inputs(pipeline) -> None:
    on = pipeline["on"]
    assert on["push"]["branches"] == ["main"]
    assert "pull_request" in on
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["run_pipeline"]["type"] == "boolean"
    assert "sweep_budget" in inputs
    assert pipeline["concurrency"]["cancel-in-progress"] is True
    assert pipeline["permissions"] == {"contents": "read"}


def test_jobs_order_and_gates(pipeline) -> None:
    jobs = pipeline["jobs"]
    assert {"setup", "lint", "test", "pipeline", "report", "image", "summary"} <= set(jobs)
    assert set(jobs["pipeline"]["needs"]) == {"lint", "test"}
    assert jobs["report"]["needs"] == "pipeline"
    assert "pull_request" in jobs["report"]["if"]
    assert jobs["summary"]["if"] == "${{ always() }}"


def test_lint_and_tests_commands(pipeline) -> None:
    lint = " ".join(s.get("run", "") for s in pipeline["jobs"]["lint"]["steps"])
    assert "ruff check" in lint and "ruff format --check" in lint
    test = " ".join(s.get("run", "") for s in pipeline["jobs"]["test"]["steps"])
    # Every tier but the podman one, which the image job covers with Docker on GitHub.
    assert 'scripts/test_all.sh -m "not containers"' in test  # test_all.sh adds --cov
    assert "--cov" in (REPO_ROOT / "scripts/test_all.sh").read_text()


def test_pipeline_auth_repro_and_push_on_main_only(pipeline) -> None:
    job = pipeline["jobs"]["pipeline"]
    assert job["permissions"]["id-token"] == "write"
    auth = [s for s in job["steps"] if s.get("uses", "").startswith("google-github-actions/auth@")]
    assert {tuple(sorted(s["with"])) for s in auth} == {
        ("service_account", "workload_identity_provider"),
        ("credentials_json",),
    }
    scripts = "\n".join(s.get("run", "") for s in job["steps"])
    assert "dvc repro" in scripts and "--pull" in scripts
    push = [s for s in job["steps"] if s.get("run", "").strip() == "uv run dvc push"]
    assert len(push) == 1
    assert "refs/heads/main" in push[0]["if"] and "pull_request" in push[0]["if"]


def test_dependency_cache_is_keyed_on_the_lock(pipeline) -> None:
    setups = [s for _, s in _steps(pipeline) if s.get("uses", "").startswith("astral-sh/setup-uv")]
    assert setups
    for step in setups:
        assert step["with"]["enable-cache"] is True
        assert step["with"]["cache-dependency-glob"] == "uv.lock"


def test_report_uses_the_script_and_updates_one_comment(pipeline) -> None:
    scripts = "\n".join(s.get("run", "") for s in pipeline["jobs"]["report"]["steps"])
    assert "scripts/pr_report.py" in scripts
    assert "cml comment update" in scripts and "--watermark-title" in scripts
    assert "--publish" not in scripts  # no third-party image host


def test_image_job_builds_and_calls_the_api(pipeline) -> None:
    scripts = "\n".join(s.get("run", "") for s in pipeline["jobs"]["image"]["steps"])
    assert "--file serve/Dockerfile" in scripts
    assert "scripts/smoke_api.py" in scripts


def test_summary_goes_to_the_step_summary(pipeline) -> None:
    scripts = "\n".join(s.get("run", "") for s in pipeline["jobs"]["summary"]["steps"])
    assert "$GITHUB_STEP_SUMMARY" in scripts


REGISTRY_SECRETS = (
    "secrets.MLFLOW_TRACKING_URI",
    "secrets.MLFLOW_TRACKING_USERNAME",
    "secrets.MLFLOW_TRACKING_PASSWORD",
    "secrets.HOUSING_SIGNING_KEY",
)
MAIN_PUSH_ONLY = "github.event_name == 'push' && github.ref == 'refs/heads/main'"


def _mentions(node: Any, needle: str) -> bool:
    return needle in yaml.safe_dump(node)


def test_registration_into_the_shared_registry_is_on_pushes_to_main_only(pipeline) -> None:
    job = pipeline["jobs"]["pipeline"]
    register = [s for s in job["steps"] if "housing-registry register" in s.get("run", "")]
    assert len(register) == 1
    step = register[0]
    assert MAIN_PUSH_ONLY in step["if"]
    assert step["env"] == {
        name.removeprefix("secrets."): f"${{{{ {name} }}}}" for name in REGISTRY_SECRETS
    }
    # The pipeline itself registers into a throw-away SQLite file on the runner, on every event.
    repro = next(s for s in job["steps"] if "dvc repro" in s.get("run", ""))
    assert repro["env"]["MLFLOW_TRACKING_URI"] == "sqlite:///${{ runner.temp }}/ci-registry.db"
    assert "if" not in repro


def test_registry_secrets_reach_only_the_main_only_step(pipeline) -> None:
    for secret in REGISTRY_SECRETS:
        assert not _mentions(pipeline.get("env", {}), secret)
        for job_id, job in pipeline["jobs"].items():
            assert not _mentions(job.get("env", {}), secret), f"{job_id}: {secret} job-wide"
            steps = [s for s in job.get("steps", []) if _mentions(s, secret)]
            if job_id == "pipeline":
                assert len(steps) == 1 and MAIN_PUSH_ONLY in steps[0]["if"], secret
            else:
                assert steps == [], f"{job_id} sees {secret}"
    # The pull-request report job has no registry secret at all (only the comment token).
    assert not any(_mentions(pipeline["jobs"]["report"], s) for s in REGISTRY_SECRETS)


def test_image_job_runs_the_api_container_through_its_lifecycle(pipeline) -> None:
    steps = pipeline["jobs"]["image"]["steps"]
    scripts = "\n".join(s.get("run", "") for s in steps)
    assert "docker build --file serve/Dockerfile" in scripts
    assert '--volume "$PWD/ci-model:/models:ro"' in scripts
    assert 'curl --fail --silent --show-error "$base/health"' in scripts
    assert 'curl --fail --silent --show-error "$base/ready"' in scripts
    assert scripts.count('"$base/api/v1/predict"') == 2  # one good row, one bad
    assert '!= "422"' in scripts
    stop = next(s for s in steps if "docker stop" in s.get("run", ""))
    assert "{{.State.ExitCode}}" in stop["run"] and '!= "0"' in stop["run"]
    assert '--time "$STOP_TIMEOUT_S"' in stop["run"]
    assert int(stop["env"]["STOP_TIMEOUT_S"]) > 5 + 30  # SHUTDOWN_GRACE_S + uvicorn's drain
    names = [s.get("name", "") for s in steps]
    assert names.index(stop["name"]) > max(
        i for i, s in enumerate(steps) if "$base/" in s.get("run", "")
    )


def test_setup_lints_every_dockerfile_and_tests_get_postgresql(pipeline) -> None:
    setup = "\n".join(s.get("run", "") for s in pipeline["jobs"]["setup"]["steps"])
    hadolint = next(
        s["run"] for s in pipeline["jobs"]["setup"]["steps"] if "hadolint" in s.get("run", "")
    )
    for path in ("Dockerfile", "serve/Dockerfile", "app/Dockerfile", "docker/mlflow/Dockerfile"):
        assert path in hadolint
    assert "docker/postgres/Dockerfile" in hadolint
    assert "docker-compose.yaml" in setup and "compose-spec.json" in setup
    tests = "\n".join(s.get("run", "") for s in pipeline["jobs"]["test"]["steps"])
    assert re.search(r"apt-get install .*\bpostgresql\b", tests)
