"""The GitHub workflows: actionlint, the workflow JSON schema, and the project's CI policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci_tools import REPO_ROOT, WORKFLOWS, run

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


# Every `run:` step, and what proves it: the test that runs the same make target or script,
# whose source names it (the make targets .ci/run runs itself: install, and test, which runs
# lint and system-deps). A new step needs a line here, and so a test that runs it.
STEP_PROOFS = {
    "make check": "tests/ci/test_workflows.py::test_make_check_passes_as_the_setup_job_runs_it",
    "make lint": ".ci/run",
    "make test": ".ci/run",
    "make pipeline": "tests/pipeline/test_pipeline_full.py::"
    "test_make_pipeline_reproduces_the_committed_lock_and_meets_the_target",
    "make dvc-push": "tests/remote/conftest.py::pushed",
    "make release": "tests/remote/conftest.py::pushed",
    "make report": "tests/scripts/test_pr_report.py::test_make_report_writes_report_and_summary",
    "make images-check": "tests/containers",
    "scripts/pr_report.py": "tests/scripts/test_pr_report.py::test_collect_copies_the_report_files",
    "scripts/ci_summary.py": "tests/scripts/test_ci_summary.py",
}
# YAML's part of the workflow (issue 23): the CML post.
YAML_ONLY = ("cml comment update",)
STEP = re.compile(
    r"^(?:make (?P<target>[a-z][a-z-]*)(?: [A-Z_]+=\S.*)?"
    r"|(?:\.venv/bin/python |python3 )?(?P<script>scripts/[\w.]+)(?: .*)?)$"
)


def _proof(command: str) -> str:
    assert command in STEP_PROOFS, f"`{command}` in the workflow has no test that runs it"
    return STEP_PROOFS[command]


def test_every_run_step_is_a_make_target_or_a_script_the_tests_run(pipeline) -> None:
    commands = set()
    for job_id, step in _steps(pipeline):
        script = step.get("run")
        if script is None or script.strip().startswith(YAML_ONLY):
            continue
        line = script.strip()
        assert "\n" not in line, f"{job_id}: a run step is one command, not a script:\n{line}"
        match = STEP.match(line)
        assert match, f"{job_id}: `{line}` is neither `make <target>` nor `scripts/<file>`"
        commands.add(f"make {match['target']}" if match["target"] else match["script"])
    assert commands == set(STEP_PROOFS), sorted(commands ^ set(STEP_PROOFS))
    ci_run = (REPO_ROOT / ".ci/run").read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "make test" in ci_run and re.search(r"^test: install system-deps lint$", makefile, re.M)
    for command in commands:
        proof = _proof(command)
        if proof == ".ci/run":
            continue
        path, _, name = proof.partition("::")
        source = (REPO_ROOT / path).read_text() if path.endswith(".py") else ""
        if name:
            assert re.search(rf"^(?:async )?def {name}\(", source, re.M), proof
        if command.startswith("make "):
            target = command.removeprefix("make ")
            assert re.search(rf"^{target}:", makefile, re.M), command
            if path.endswith(".py"):
                assert f'"{target}"' in source or command in source, (command, proof)
        else:
            assert (REPO_ROOT / command).is_file(), command
            if path.endswith(".py"):
                assert command in source or Path(command).name in source, (command, proof)


def test_make_check_passes_as_the_setup_job_runs_it() -> None:
    """`make check` as the setup job runs it: uv.lock, files, image requirements, dvc.yaml,
    params.yaml, actionlint and both schemas, hadolint (scripts/check_repo.sh)."""
    done = run("make", "check")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "repository checks passed" in done.stdout.splitlines()  # (make[1] may follow)
    script = (REPO_ROOT / "scripts/check_repo.sh").read_text()
    for dockerfile in ("Dockerfile", "serve/Dockerfile", "app/Dockerfile"):
        assert dockerfile in script
    for needle in ("docker/mlflow/Dockerfile", "docker/postgres/Dockerfile", "actionlint"):
        assert needle in script
    assert "vendor.github-workflows" in script and "compose-spec.json" in script


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
    # CI runs the committed params only: another sweep budget is a commit (docs/cicd.md).
    assert set(inputs) == {"run_pipeline"} and inputs["run_pipeline"]["type"] == "boolean"
    assert pipeline["concurrency"]["cancel-in-progress"] is True
    assert pipeline["permissions"] == {"contents": "read"}


def test_jobs_order_and_gates(pipeline) -> None:
    jobs = pipeline["jobs"]
    assert set(jobs) == {
        *("setup", "lint", "test", "pipeline", "release", "report", "image", "summary")
    }
    assert set(jobs["pipeline"]["needs"]) == {"lint", "test"}
    assert jobs["report"]["needs"] == "pipeline" and "pull_request" in jobs["report"]["if"]
    assert jobs["release"]["needs"] == "pipeline" and MAIN_PUSH_ONLY in jobs["release"]["if"]
    assert set(jobs["image"]["needs"]) == {"lint", "test"}
    assert jobs["summary"]["if"] == "${{ always() }}"
    assert set(jobs["summary"]["needs"]) == set(jobs) - {"summary"}


def test_tests_run_every_tier_but_containers_with_coverage(pipeline) -> None:
    test = " ".join(s.get("run", "") for s in pipeline["jobs"]["test"]["steps"])
    # Every tier but the podman one, which the image job runs.
    assert 'make test TEST_ARGS=\'-m "not containers"' in test
    assert "--cov" in (REPO_ROOT / "scripts/test_all.sh").read_text()


def test_pipeline_pulls_when_it_can_and_pushes_on_main_only(pipeline) -> None:
    job = pipeline["jobs"]["pipeline"]
    assert job["permissions"]["id-token"] == "write"
    auth = [s for s in job["steps"] if s.get("uses", "").startswith("google-github-actions/auth@")]
    assert {tuple(sorted(s["with"])) for s in auth} == {
        ("service_account", "workload_identity_provider"),
        ("credentials_json",),
    }
    repro = next(s for s in job["steps"] if s.get("run", "").strip() == "make pipeline")
    assert "'--pull'" in repro["env"]["REPRO_ARGS"] and "if" not in repro
    assert "$(REPRO_ARGS)" in (REPO_ROOT / "Makefile").read_text()
    # A throw-away registry, unsigned on purpose: the release job alone signs and publishes.
    assert repro["env"]["MLFLOW_TRACKING_URI"] == "sqlite:///${{ runner.temp }}/ci-registry.db"
    assert repro["env"]["HOUSING_ALLOW_UNSIGNED"] == "1"
    push = [s for s in job["steps"] if s.get("run", "").strip() == "make dvc-push"]
    assert len(push) == 1
    assert "refs/heads/main" in push[0]["if"] and "pull_request" in push[0]["if"]


def test_dependency_cache_is_keyed_on_the_lock(pipeline) -> None:
    setups = [s for _, s in _steps(pipeline) if s.get("uses", "").startswith("astral-sh/setup-uv")]
    assert setups
    for step in setups:
        assert step["with"]["enable-cache"] is True
        assert step["with"]["cache-dependency-glob"] == "uv.lock"


def test_report_is_made_by_make_report_and_updates_one_comment(pipeline) -> None:
    scripts = "\n".join(s.get("run", "") for s in pipeline["jobs"]["report"]["steps"])
    assert 'make report BASE="origin/$BASE_REF"' in scripts
    assert "cml comment update" in scripts and "--watermark-title" in scripts
    assert "report.md" in scripts and "--publish" not in scripts  # no third-party image host


def test_image_job_runs_the_container_tests(pipeline) -> None:
    """The same container checks as `.ci/run`'s podman tier, which serve a signed champion."""
    runs = [s["run"].strip() for s in pipeline["jobs"]["image"]["steps"] if "run" in s]
    assert runs == ["make images-check"]
    assert "-m containers tests/containers" in (REPO_ROOT / "Makefile").read_text()
    images = (REPO_ROOT / "tests/containers/test_images.py").read_text()
    assert "build_champion" in images and ":/models:ro" in images


def test_summary_job_fails_when_a_job_failed(pipeline) -> None:
    step = next(s for s in pipeline["jobs"]["summary"]["steps"] if "run" in s)
    assert step["run"].strip() == "python3 scripts/ci_summary.py"
    assert step["env"]["RESULTS"] == "${{ toJSON(needs) }}"


REGISTRY_SECRETS = (
    "secrets.MLFLOW_TRACKING_URI",
    "secrets.MLFLOW_TRACKING_USERNAME",
    "secrets.MLFLOW_TRACKING_PASSWORD",
    "secrets.HOUSING_SIGNING_KEY",
)
MAIN_PUSH_ONLY = "github.event_name == 'push' && github.ref == 'refs/heads/main'"


def _mentions(node: Any, needle: str) -> bool:
    return needle in yaml.safe_dump(node)


def test_release_on_pushes_to_main_only_with_the_registry_and_the_team_key(pipeline) -> None:
    job = pipeline["jobs"]["release"]
    assert MAIN_PUSH_ONLY in job["if"] and job["permissions"]["contents"] == "write"
    (step,) = [s for s in job["steps"] if "run" in s]
    assert step["run"].strip() == "make release RELEASE_ARGS=--push"
    secrets = {k: v for k, v in step["env"].items() if "secrets." in v}
    assert secrets == {
        name.removeprefix("secrets."): f"${{{{ {name} }}}}" for name in REGISTRY_SECRETS
    }


def test_registry_secrets_reach_only_the_release_step(pipeline) -> None:
    for secret in REGISTRY_SECRETS:
        assert not _mentions(pipeline.get("env", {}), secret)
        for job_id, job in pipeline["jobs"].items():
            assert not _mentions(job.get("env", {}), secret), f"{job_id}: {secret} job-wide"
            steps = [s for s in job.get("steps", []) if _mentions(s, secret)]
            if job_id == "release":
                assert len(steps) == 1, secret
            else:
                assert steps == [], f"{job_id} sees {secret}"


def test_setup_runs_make_check_and_tests_get_postgresql(pipeline) -> None:
    setup = [s["run"].strip() for s in pipeline["jobs"]["setup"]["steps"] if "run" in s]
    assert setup == ["make check"]
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r'^system-deps:(?:\n.*)*?pkgs="\$\$pkgs postgresql"', makefile, re.M)
