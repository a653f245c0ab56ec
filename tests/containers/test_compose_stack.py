"""The compose stack end to end under podman-compose: docker-compose.yaml, unchanged.

Builds the four images the compose file names (scripts/compose_stack.py, with scripts/images'
base and podman flags), writes a throw-away .env from .env.example with generated passwords
and a fresh signing key pair, `podman-compose up -d`, registers and promotes a real small
LightGBM bundle into the stack's MLflow as the admin with `housing-registry register`
(HOUSING_SIGNING_KEY set, so the promotion is signed), waits for the API (the read-only
registry user) to hot-reload it with `"signed": true`, prices a district from inside the app
container through its API_URL, checks the anonymous client gets 401 on the MLflow port, that
Prometheus (docker/prometheus's image, started with the API) loaded deploy/prometheus's alert
rules and scrapes the API as `up` with a model loaded, then `podman-compose down -v` and checks
nothing of the project is left. Phase times are printed.

No GCS emulator: the compose file keeps MLflow's artifacts on a served volume
(docs/governance.md, "Shared registry (compose)").
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
import yaml
from container_support import free_port
from dotenv import dotenv_values

from housing.signing import SigningKey
from housing.signing.keys import public_pem
from scripts.compose_stack import (
    COMPOSE_FILE,
    STACK_IMAGES,
    build_stack,
    compose,
    leftovers,
)
from scripts.images.base import Base
from scripts.images.build import ImageSpec, build_image
from scripts.images.podman import PodmanError, podman

pytestmark = pytest.mark.containers

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "housing-compose-test"
# The stack is published on free ports (MLFLOW_PORT, API_PORT, APP_PORT in .env), so a
# `make serve` or `make app` left running on 8000/8501 does not stop it.
PORT_VARS = ("MLFLOW_PORT", "API_PORT", "APP_PORT")
RESULTS = REPO_ROOT / "test-output" / "compose_stack.json"
# Prometheus from Debian's package (prom/prometheus cannot be pulled here), as PROMETHEUS_IMAGE;
# built beside the stack's images (a warm build takes about a second).
PROMETHEUS = ImageSpec(
    "prometheus", "docker/prometheus/Dockerfile", "localhost/housing-prometheus:2.42"
)
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
UP_TIMEOUT_S = 300.0  # first start: PostgreSQL initdb, MLflow's migrations (43 s here)
RELOAD_INTERVAL_S = 2


# --- helpers ------------------------------------------------------------------------------


def _request(
    url: str, body: Any = None, *, auth: tuple[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if auth:
        headers["Authorization"] = "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def _service_container(service: str) -> str:
    out = podman(
        "ps",
        "-a",
        "--filter",
        f"label=io.podman.compose.project={PROJECT}",
        "--filter",
        f"label=io.podman.compose.service={service}",
        "--format",
        "{{.Names}}",
    ).stdout.split()
    assert len(out) == 1, f"service {service}: containers {out}"
    return out[0]


def _logs(service: str) -> str:
    try:
        name = _service_container(service)
    except (AssertionError, PodmanError) as exc:
        return f"({service}: {exc})"
    done = podman("logs", "--tail", "40", name, check=False, timeout=30)
    return f"--- {service} ({name}) ---\n" + (done.stdout + done.stderr)[-3000:]


def _all_logs() -> str:
    services = ("postgres", "mlflow", "registry-users", "api", "app", "prometheus")
    return "\n".join(_logs(s) for s in services)


def _wait(what: str, probe, timeout: float) -> Any:
    """Call ``probe()`` until it returns something truthy; fail with every service's log."""
    end, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < end:
        try:
            got = probe()
            if got:
                return got
            last = "not yet"
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(1.0)
    pytest.fail(f"{what} not reached after {timeout:.0f} s ({last})\n{_all_logs()}")


PG_READY = ("pg_isready", "-h", "127.0.0.1", "-U", "mlflow", "-d", "mlflow")


def _exec_ok(service: str, *cmd: str) -> bool:
    return (
        podman("exec", _service_container(service), *cmd, check=False, timeout=30).returncode == 0
    )


def _exited(service: str) -> bool:
    """True once ``service``'s container exited 0; fails at once on another exit code."""
    name = _service_container(service)
    state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout
    status, code = state.split()
    if status == "exited" and code != "0":
        pytest.fail(f"{service} exited {code}\n{_all_logs()}")
    return status == "exited"


def _write_env(path: Path, key: SigningKey, images_env: dict[str, str]) -> dict[str, str]:
    """.env.example with every value generated (passwords, secret, verify key) and the images."""
    example = dotenv_values(REPO_ROOT / ".env.example")
    values = {k: v for k, v in example.items() if v is not None}
    for name in (
        "POSTGRES_PASSWORD",
        "OPTUNA_DB_PASSWORD",
        "MLFLOW_ADMIN_PASSWORD",
        "HOUSING_READER_PASSWORD",
    ):
        values[name] = secrets.token_urlsafe(18)
    values["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_urlsafe(32)
    values["HOUSING_VERIFY_KEYS"] = public_pem(key.public_key).decode().strip()
    values["RELOAD_INTERVAL_S"] = str(RELOAD_INTERVAL_S)
    values.update(images_env)
    lines = [f'{k}="{v}"' for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    parsed = {k: v or "" for k, v in dotenv_values(path).items()}
    assert parsed == values, "the generated .env does not parse back (python-dotenv)"
    return values


def _bundle(root: Path, housing_df) -> tuple[Path, Path, Path]:
    """A real small LightGBM bundle (model.skops, model.json, serving/), its test split, params."""
    from housing.artifact import save_bundle
    from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES, TARGET, derive_contract
    from housing.intervals import calibrate
    from housing.metrics import regression_report
    from housing.model import FeatureConfig, ModelSpec, build_model
    from housing.monitor.reference import build_reference
    from housing.serving import SERVING_DIR
    from housing.serving.export import write_serving
    from stages.register import out_of_fold

    sample = housing_df.dropna(subset=[TARGET]).sample(4000, random_state=11)
    train, test = sample.iloc[:3000].reset_index(drop=True), sample.iloc[3000:]
    split = root / "data" / "split" / "test.parquet"
    split.parent.mkdir(parents=True)
    test.to_parquet(split)
    spec = ModelSpec(
        imputer="median",
        features=FeatureConfig(n_clusters=5, gamma=1.0, rotations=(30.0, 60.0), neighbors=8),
        family="lightgbm",
        params={"n_estimators": 60, "num_leaves": 15},
        seed=42,
    )
    model = build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])
    metrics = regression_report(
        test[TARGET].to_numpy(float), model.predict(test.drop(columns=[TARGET]))
    )
    contract = derive_contract(train, margin=0.25).to_dict()
    bundle = root / "models"
    meta = {
        "name": "housing_price_model",
        "spec": {
            "imputer": spec.imputer,
            "features": spec.features.to_dict(),
            "family": spec.family,
            "params": dict(spec.params),
            "seed": spec.seed,
        },
        "contract": contract,
        "metrics": {k: round(v, 6) for k, v in metrics.items()},
        "data_md5": "compose-stack-test",
    }
    # Calibrated as the register stage does: out-of-fold residuals of the whole model.
    oof, _ = out_of_fold(spec, train, n_splits=3, seed=2027)
    interval = calibrate(train[TARGET].to_numpy(float), oof, 0.9)
    meta["serving_sha256"] = write_serving(
        bundle / SERVING_DIR,
        model,
        contract=contract,
        interval=interval,
        # The training split's summaries, as the register stage stores them: drift is on.
        reference=build_reference(
            train, oof, numeric=NUMERIC_FEATURES, categorical=(CATEGORICAL_FEATURE,)
        ),
    )
    save_bundle(bundle, model, meta)
    params = root / "params.yaml"
    register = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))["register"]
    register["bootstrap_resamples"] = 300
    # A 60-tree model fitted on 3,000 rows is below the production floors (R² 0.83 < 0.85):
    # lower them so the gate itself promotes this first model.
    register["gates"] = {**register["gates"], "min_r2": 0.5, "max_rmse": 90_000}
    params.write_text(yaml.safe_dump({"register": register}), encoding="utf-8")
    return bundle, split, params


def _check_prometheus(url: str) -> None:
    """Every rule of deploy/prometheus/alerts.yml loaded; the api target `up`, model_loaded 1."""
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    expected = {r["alert"] for g in rules for r in g["rules"] if "alert" in r}
    status, body = _request(f"{url}/api/v1/rules?type=alert")
    assert status == 200, body
    loaded = {r["name"] for g in body["data"]["groups"] for r in g["rules"]}
    assert loaded == expected, loaded

    def scraped() -> bool:
        # The last scrape of the API: target up, and the champion loaded (scrapes every 15 s).
        query = 'up{job="housing-api"} * on(job, instance) model_loaded'
        status, body = _request(f"{url}/api/v1/query?query={urllib.parse.quote(query)}")
        result = body["data"]["result"] if status == 200 else []
        return [(r["metric"]["instance"], r["value"][1]) for r in result] == [("api:8000", "1")]

    _wait("Prometheus scraping the API with a model loaded", scraped, 60.0)
    status, body = _request(f"{url}/api/v1/targets?state=active")
    [target] = body["data"]["activeTargets"]
    assert (target["labels"]["job"], target["health"]) == ("housing-api", "up"), target


# --- the test -----------------------------------------------------------------------------


def test_compose_stack_registers_signs_hot_reloads_and_prices(
    tmp_path: Path, housing_df, capsys: pytest.CaptureFixture[str]
) -> None:
    times: dict[str, float] = {}

    def phase(name: str, start: float) -> None:
        times[name] = round(time.monotonic() - start, 1)

    # Build (the layer cache makes a warm build a few seconds per image).
    start = time.monotonic()
    try:
        stack = build_stack()
    except PodmanError as exc:
        pytest.fail(f"the compose stack's images cannot be built here: {exc}", pytrace=False)
    try:
        prometheus_image = build_image(PROMETHEUS, Base(stack.base, stack.base_reason))
    except PodmanError as exc:
        pytest.fail(f"the Prometheus image cannot be built here: {exc}", pytrace=False)
    phase("build", start)
    per_image = {b.name: round(b.seconds, 1) for b in [*stack.built, prometheus_image]}
    assert {b.name for b in stack.built} == set(STACK_IMAGES)
    # What was built is what the compose file names (podman resolves short names to localhost/).
    services = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
    named = {
        "postgres": stack.env()["POSTGRES_IMAGE"]
        if services["postgres"]["image"] == "${POSTGRES_IMAGE:-postgres:15}"
        else services["postgres"]["image"],
        **{s: f"localhost/{services[s]['image']}" for s in ("mlflow", "api", "app")},
    }
    assert named == {name: spec.tag for name, spec in STACK_IMAGES.items()}
    assert services["registry-users"]["image"] == services["mlflow"]["image"]
    assert services["prometheus"]["image"].startswith("${PROMETHEUS_IMAGE:-")

    key = SigningKey.generate()
    env_file = tmp_path / ".env"
    ports = {var: str(free_port()) for var in (*PORT_VARS, "PROMETHEUS_PORT")}
    images_env = {**stack.env(), "PROMETHEUS_IMAGE": PROMETHEUS.tag}
    values = _write_env(env_file, key, {**images_env, **ports})
    mlflow, api, app = (f"http://127.0.0.1:{ports[var]}" for var in PORT_VARS)
    prometheus = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"
    admin = (values["MLFLOW_ADMIN_USERNAME"], values["MLFLOW_ADMIN_PASSWORD"])
    reader = (values["HOUSING_READER_USERNAME"], values["HOUSING_READER_PASSWORD"])

    # A run that died half-way may have left the project behind: take it down first.
    if leftovers(PROJECT):
        compose(PROJECT, env_file, "down", "-v", "-t", "5", check=False)

    bundle, split, params = _bundle(tmp_path / "work", housing_df)
    try:
        start = time.monotonic()
        # podman 4.3 (Debian bookworm) cannot do what `docker compose up -d` does in one call:
        # podman-compose ignores `service_healthy` before podman 4.6, and `podman start` of a
        # service whose dependency is the exited one-shot fails ("generating dependency graph
        # ... not found in input list"). So bring the services up in the compose file's
        # dependency order, `--no-deps` (no podman --requires), doing the waits ourselves.
        compose(PROJECT, env_file, "up", "-d", "--no-deps", "postgres")
        _wait("PostgreSQL ready", lambda: _exec_ok("postgres", *PG_READY), UP_TIMEOUT_S)
        compose(PROJECT, env_file, "up", "-d", "--no-deps", "mlflow", "registry-users")
        _wait(
            "MLflow /health",
            lambda: _request(f"{mlflow}/health", timeout=3)[0] == 200,
            UP_TIMEOUT_S,
        )
        _wait("registry-users done", lambda: _exited("registry-users"), UP_TIMEOUT_S)
        # Prometheus starts with the API: its first scrapes overlap the waits below.
        compose(PROJECT, env_file, "up", "-d", "--no-deps", "api", "app", "prometheus")
        _wait(
            "MLflow /health",
            lambda: _request(f"{mlflow}/health", timeout=3)[0] == 200,
            UP_TIMEOUT_S,
        )
        _wait("API /health", lambda: _request(f"{api}/health", timeout=3)[0] == 200, UP_TIMEOUT_S)
        _wait(
            "app /_stcore/health",
            lambda: _request(f"{app}/_stcore/health", timeout=3)[0] == 200,
            UP_TIMEOUT_S,
        )
        phase("up", start)

        # The registry refuses the anonymous client, reads included.
        search = f"{mlflow}/api/2.0/mlflow/registered-models/search"
        assert _request(search)[0] == 401
        assert _request(search, auth=admin)[0] == 200
        # The one-shot made the API's user (it can read, it cannot be the admin).
        assert _request(search, auth=reader)[0] == 200
        # No champion yet: the API is live but not ready.
        assert _request(f"{api}/ready")[0] == 503

        # Register + promote (first model passes the gates) as the admin, signed.
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": mlflow,
            "MLFLOW_TRACKING_USERNAME": admin[0],
            "MLFLOW_TRACKING_PASSWORD": admin[1],
            "HOUSING_SIGNING_KEY": key.private_pem().decode(),
            "HOUSING_ACTOR": "tests/containers/test_compose_stack.py",
        }
        env.pop("HOUSING_SIGNING_KEY_FILE", None)
        cli = Path(sys.executable).with_name("housing-registry")
        register = [str(cli), "register", "--bundle-dir", str(bundle)]
        register += ["--test-split", str(split), "--params", str(params)]

        def run(args: list[str]) -> str:
            done = subprocess.run(
                args,
                cwd=tmp_path / "work",
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        def shadowing(version: str | None):
            """True once /api/v1/monitoring's shadow serves signed ``version`` (None: idle)."""

            def check() -> bool:
                status, body = _request(f"{api}/api/v1/monitoring", timeout=5)
                shadow = body.get("shadow") if status == 200 and isinstance(body, dict) else None
                if shadow is None:
                    return False
                if version is None:
                    return not shadow["loaded"]
                return bool(
                    shadow["loaded"]
                    and shadow["challenger_version"] == version
                    and shadow["signed"]
                )

            return check

        def logged() -> bool:
            _status, body = _request(f"{api}/metrics", timeout=5)
            text = body.decode() if isinstance(body, bytes) else str(body)
            values = dict(
                line.split()[:2]
                for line in text.splitlines()
                if line.startswith(("feature_log_written_total ", "feature_log_errors_total "))
            )
            written = float(values.get("feature_log_written_total", 0))
            return written >= 1 and float(values.get("feature_log_errors_total", 0)) == 0

        def served(version: str):
            def probe() -> dict[str, Any] | None:
                status, body = _request(f"{api}/api/v1/model", timeout=5)
                # 200 with null fields while nothing is loaded.
                ok = status == 200 and isinstance(body, dict) and body.get("version") == version
                return body if ok else None

            return probe

        start = time.monotonic()
        out = run(register)
        assert "version 1: promoted to champion" in out, out
        phase("register", start)

        # The API (read-only user) loads the signed champion by itself (it started with none).
        start = time.monotonic()
        model = _wait("the API serving champion v1", served("1"), 120.0)
        phase("first load after register", start)
        assert model["signed"] is True, model
        assert model["alias"] == "champion", model
        assert _request(f"{api}/ready")[0] == 200
        # The API's user may read the model but not move its champion alias (READ only).
        alias = {"name": "housing_price_model", "alias": "champion", "version": "1"}
        moved = _request(f"{mlflow}/api/2.0/mlflow/registered-models/alias", alias, auth=reader)
        assert moved[0] == 403, moved

        # Hot reload of a moved alias: the same bundle again is held (identical predictions)
        # as v2; a signed manual promotion of v2 is picked up within RELOAD_INTERVAL_S.
        out = run(register)
        assert "version 2: held as challenger" in out, out
        # SHADOW is on: the API loads the held v2, verified, through the read-only user.
        start = time.monotonic()
        _wait("the API's shadow loading challenger v2", shadowing("2"), 120.0)
        phase("shadow v2", start)
        start = time.monotonic()
        out = run([str(cli), "promote", "2", "--reason", "compose stack hot-reload test"])
        assert "is now version 2" in out, out
        phase("promote v2", start)
        start = time.monotonic()
        model = _wait("the API hot-reloading champion v2", served("2"), 120.0)
        phase("hot reload v2", start)
        assert model["signed"] is True, model

        # A price through the app container's API_URL (http://api:8000: service-name DNS).
        start = time.monotonic()
        script = (
            "import json\n"
            "from app.client import ApiClient\n"
            "from app.settings import AppSettings\n"
            "settings = AppSettings.from_env()\n"
            "assert settings.api_url.rstrip('/') == 'http://api:8000', settings.api_url\n"
            "with ApiClient(settings.api_url) as client:\n"
            "    client.ready()\n"
            "    example = client.contract()['example']\n"
            "    print(json.dumps(client.predict([example])))\n"
        )
        app_container = _service_container("app")
        done = podman("exec", app_container, "python", "-c", script, check=False, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr + _logs("api")
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        assert answer["predictions"][0]["predicted_price"] > 0
        assert answer["model_name"] == "housing_price_model"
        phase("predict via app", start)

        # The feature log (on its volume) and the drift window saw the price; the promoted v2
        # dropped the challenger, so the shadow is idle and says why.
        start = time.monotonic()
        _wait("the feature log writing the price", logged, 30.0)
        status, monitoring = _request(f"{api}/api/v1/monitoring")
        assert status == 200 and monitoring["drift"]["instances"] >= 1, monitoring
        _wait("the shadow going idle", shadowing(None), 120.0)
        phase("monitoring", start)

        # Prometheus: the checked rules loaded, the API scraped over the compose network.
        start = time.monotonic()
        _check_prometheus(prometheus)
        phase("prometheus", start)
    finally:
        start = time.monotonic()
        down = compose(PROJECT, env_file, "down", "-v", "-t", "10", check=False)
        phase("down", start)
        left = leftovers(PROJECT)
        pods = podman("pod", "ps", "--format", "{{.Name}}").stdout.split()
        report = {
            "times_s": times,
            "images_s": per_image,
            "base": stack.base,
            "base_reason": stack.base_reason,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2), encoding="utf-8")
        with capsys.disabled():
            sys.stdout.write(f"\ncompose stack: {json.dumps(report)}\n")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not left, f"podman-compose down -v left {left}"
    assert not [p for p in pods if PROJECT in p], pods
