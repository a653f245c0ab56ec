"""The compose file's `sweep-worker` service, run for real under podman-compose.

docker-compose.yaml is copied unchanged into a throw-away project directory that holds what
a worker reads from its read-only checkout mount (params.yaml with a small sweep, a
2,000-row train split, the upstream choices' reports, the pinned library list). One
override file publishes PostgreSQL on a free 127.0.0.1 port, so that the sweep stage can run
on the host the way a user runs it (the compose file keeps the database unpublished).

The stage creates the study on the compose `postgres` service (its `optuna` database and
user, from initdb) with no local worker (`sweep.workers: 0`: it only coordinates, so the
containers cannot find the study already done); `podman-compose up --scale sweep-worker=2`
adds two container workers of the pipeline image, which join the study by name over the
compose network. The study ends with its `n_trials` finished, every trial run by a
container worker, and they exited 0 on their own. Then `down -v` leaves nothing.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values
from postgres_support import free_port

from scripts.compose_stack import STACK_IMAGES, compose, ensure_dnsname, leftovers
from scripts.images.base import choose_base
from scripts.images.build import ImageSpec, build_image
from scripts.images.podman import PodmanError, ensure_podman, podman

pytestmark = pytest.mark.containers
logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "housing-compose-sweep-test"
# The image name the compose file's sweep-worker service uses (podman adds localhost/).
PIPELINE = ImageSpec("pipeline", "Dockerfile", "localhost/housing-pipeline:local")
REPORTS = (
    "reports/preprocess/imputation.json",
    "reports/featurize/features.json",
    "reports/select/leaderboard.json",
)
N_TRIALS = 9
SMALL_SPACE = {
    "n_estimators": {"distribution": "int_uniform", "min": 40, "max": 120},
    "learning_rate": {"distribution": "log_uniform_values", "min": 0.05, "max": 0.2},
    "num_leaves": {"distribution": "int_uniform", "min": 7, "max": 31},
}
TIMEOUT_S = 600


def _project_dir(root: Path, housing_df, port: int) -> Path:
    """The compose project: the compose file (unchanged), initdb, the worker's inputs."""
    root.mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "docker-compose.yaml", root / "docker-compose.yaml")
    shutil.copytree(REPO_ROOT / "docker" / "postgres", root / "docker" / "postgres")
    (root / "compose.port.yaml").write_text(
        yaml.safe_dump({"services": {"postgres": {"ports": [f"127.0.0.1:{port}:5432"]}}})
    )
    (root / "data" / "split").mkdir(parents=True)
    housing_df.sample(2000, random_state=5).to_parquet(
        root / "data" / "split" / "train.parquet", index=False
    )
    for report in (*REPORTS, "requirements/pipeline-libraries.txt"):
        (root / report).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / report, root / report)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["sweep"].update(
        storage=f"postgresql+psycopg://optuna@127.0.0.1:{port}/optuna",
        workers=0,
        n_trials=N_TRIALS,
        cv_folds=2,
        resource_step=40,
        timeout_s=TIMEOUT_S,
        config={
            "method": "bayes",
            "metric": {"name": "cv_rmse", "goal": "minimize"},
            "early_terminate": {"type": "hyperband", "min_iter": 40, "eta": 3},
        },
        spaces={"lightgbm": SMALL_SPACE},
        bagging={"sizes": [1], "max_rounds": 350},
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for path in [root, *root.rglob("*")]:  # the image's user reads the mount
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def _study_name(project: Path) -> str:
    """The name the stage will give the study: a function of the inputs in ``project``."""
    code = (
        "import yaml; from housing.sweep.inputs import inputs_digest, study_name; "
        "p = yaml.safe_load(open('params.yaml'))['sweep']; print(study_name(inputs_digest(p)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _env_file(path: Path, study: str, images_env: dict[str, str]) -> str:
    """.env.example with generated passwords and the study; returns the optuna password."""
    values = {k: v for k, v in dotenv_values(REPO_ROOT / ".env.example").items() if v}
    for name in ("POSTGRES_PASSWORD", "OPTUNA_DB_PASSWORD", "MLFLOW_ADMIN_PASSWORD",
                 "HOUSING_READER_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):  # fmt: skip
        values[name] = secrets.token_urlsafe(18)
    values["SWEEP_STUDY"] = study
    values.update(images_env)
    path.write_text("".join(f'{k}="{v}"\n' for k, v in values.items()))
    path.chmod(0o600)
    return values["OPTUNA_DB_PASSWORD"]


def _containers(service: str) -> list[str]:
    out = podman(
        "ps", "-a",
        "--filter", f"label=io.podman.compose.project={PROJECT}",
        "--filter", f"label=io.podman.compose.service={service}",
        "--format", "{{.Names}}",
    ).stdout  # fmt: skip
    return sorted(out.split())


def _state(name: str) -> tuple[str, str]:
    out = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout
    status, code = out.split()
    return status, code


def _logs(names: list[str], tail: int = 30) -> str:
    parts = []
    for name in names:
        done = podman("logs", "--tail", str(tail), name, check=False, timeout=30)
        parts.append(f"--- {name} ---\n" + (done.stdout + done.stderr)[-3000:])
    return "\n".join(parts)


def test_compose_sweep_workers_join_the_stages_study_on_postgres(tmp_path, housing_df):
    try:
        ensure_podman()
        ensure_dnsname()
        base = choose_base()
        build_image(STACK_IMAGES["postgres"], base)
        build_image(PIPELINE, base)
    except PodmanError as exc:
        pytest.fail(f"the sweep worker's images cannot be built here: {exc}", pytrace=False)
    port = free_port()
    project = _project_dir(tmp_path / "project", housing_df, port)
    study = _study_name(project)
    env_file = tmp_path / ".env"
    password = _env_file(
        env_file, study, {"POSTGRES_IMAGE": STACK_IMAGES["postgres"].tag, "BASE_IMAGE": base.image}
    )
    files = (project / "docker-compose.yaml", project / "compose.port.yaml")
    if leftovers(PROJECT):
        compose(PROJECT, env_file, "down", "-v", "-t", "5", check=False, files=files,
                profiles=["sweep"])  # fmt: skip
    stage = None
    try:
        compose(PROJECT, env_file, "up", "-d", "--no-deps", "postgres", files=files)
        [pg] = _containers("postgres")
        ready = ("pg_isready", "-h", "127.0.0.1", "-U", "optuna", "-d", "optuna")
        end = time.monotonic() + 300
        while podman("exec", pg, *ready, check=False, timeout=30).returncode != 0:
            assert time.monotonic() < end, "PostgreSQL not ready after 300 s\n" + _logs([pg])
            time.sleep(1)

        env = {
            **{k: v for k, v in os.environ.items() if k != "HOUSING_DATA_MIRROR"},
            "PYTHONPATH": str(REPO_ROOT),
            "OMP_NUM_THREADS": "1",
            "PGPASSWORD": password,
            "WANDB_MODE": "disabled",
            "TQDM_DISABLE": "1",
        }
        log = (tmp_path / "stage.log").open("w")
        stage = subprocess.Popen(
            [sys.executable, "-m", "stages.sweep"],
            cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        # The stage logs the study once it exists; then the container workers may join it.
        end = time.monotonic() + 120
        while f"sweep: study {study} on postgresql" not in (tmp_path / "stage.log").read_text():
            assert stage.poll() is None, (tmp_path / "stage.log").read_text()[-3000:]
            assert time.monotonic() < end, "the stage did not create the study in 120 s"
            time.sleep(0.5)
        compose(PROJECT, env_file, "up", "-d", "--no-deps", "--scale", "sweep-worker=2",
                "sweep-worker", files=files, profiles=["sweep"])  # fmt: skip
        workers = _containers("sweep-worker")
        assert len(workers) == 2, workers

        assert stage.wait(timeout=TIMEOUT_S) == 0, (tmp_path / "stage.log").read_text()[-4000:]
        # Each container worker stops by itself once the study has n_trials finished.
        end = time.monotonic() + 120
        while any(_state(w)[0] != "exited" for w in workers):
            assert time.monotonic() < end, "workers still running\n" + _logs(workers)
            time.sleep(1)
        assert [_state(w)[1] for w in workers] == ["0", "0"], _logs(workers)
        logs = "".join(
            (lambda d: d.stdout + d.stderr)(podman("logs", w, check=False, timeout=30))
            for w in workers
        )
        assert logs.count(f"joined study {study}") == 2, _logs(workers)

        summary = json.loads((project / "reports/sweep/summary.json").read_text())
        assert summary["storage"] == "postgresql" and summary["study"] == study
        assert N_TRIALS <= summary["n_finished"] <= N_TRIALS + 2  # overshoot <= workers - 1
        assert summary["workers"] == 0 and summary["per_worker"], summary
        assert not any(w.startswith("local-") for w in summary["per_worker"]), summary
        logger.info(
            "study %s: %d finished, per worker %s", study, summary["n_finished"],
            summary["per_worker"],
        )  # fmt: skip
        assert (project / "models/best_params.yaml").is_file()
        assert password not in (tmp_path / "stage.log").read_text() + logs
    finally:
        if stage is not None and stage.poll() is None:
            stage.kill()
        compose(PROJECT, env_file, "down", "-v", "-t", "5", check=False, files=files,
                profiles=["sweep"])  # fmt: skip
    assert not any(leftovers(PROJECT).values()), leftovers(PROJECT)
