"""The three images, built with podman by scripts/images and run for real.

The API image serves a signed champion directory mounted read-only; the app image prices a
district through the API container with its own client; the pipeline image runs `dvc repro`
on a 4,000-row sample with the data mirror mounted read-only. Every file of every image is
listed and checked for test code, data, caches, Git metadata and secrets.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from container_support import ALLOWED, forbidden_reasons, free_port, logs
from pipeline.test_pipeline_sample import stratified_sample
from pipeline_support import make_pipeline_repo, ran_stages, sample_params

from housing.signing import PromotionRecord, SigningKey, build_champion, now_utc, write_keypair
from scripts.images.build import HOST_CA
from scripts.images.podman import podman, podman_env

pytestmark = pytest.mark.containers

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_UID = 10001
STARTUP_S = 120.0
STOP_GRACE_S = 30  # podman stop -t: SIGKILL after this; the API must exit well before


# --- helpers ------------------------------------------------------------------------------


def _request(url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.strip().startswith(b"{") else raw
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw.strip().startswith(b"{") else raw


def _wait(url: str, name: str, expect: int = 200, timeout: float = STARTUP_S) -> Any:
    """Poll ``url`` until it answers ``expect``; fail with the container's log otherwise."""
    end, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < end:
        state = podman("inspect", "--format", "{{.State.Status}}", name, check=False).stdout
        if state.strip() not in {"running", "created", "stopping", ""}:
            pytest.fail(f"{name} is {state.strip()}\n{logs(name)}")
        try:
            status, body = _request(url, timeout=3.0)
            if status == expect:
                return body
            last = f"HTTP {status}: {body!r:.200}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    pytest.fail(f"{url} not {expect} after {timeout:.0f} s ({last})\n{logs(name)}")


def _readme_predict_example() -> tuple[str, dict[str, Any]]:
    """The path and JSON body of the README's `curl ... /predict` example."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(
        r"curl -s -X POST http://127\.0\.0\.1:8000(?P<path>\S+).*?-d '(?P<body>\{.*?\})'",
        readme,
        re.S,
    )
    assert match, "README.md has no `curl -s -X POST ... -d '{...}'` prediction example"
    return match["path"], json.loads(match["body"])


def _readable_by_all(root: Path) -> None:
    """The image's user (uid 10001) must read a mount that pytest's tmp dirs keep private."""
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))


def _healthy(name: str) -> None:
    done = podman("healthcheck", "run", name, check=False, timeout=60)
    assert done.returncode == 0, f"HEALTHCHECK of {name}: {done.stdout}{done.stderr}"


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory, model_bundle_dir: Path) -> dict[str, Path]:
    """A signed champion directory built from the session's small real bundle, and its key."""
    root = tmp_path_factory.mktemp("champion")
    key = SigningKey.generate()
    _, public, _ = write_keypair(root / "keys", key)
    record = PromotionRecord(
        name="housing_price_model",
        version="1",
        alias="champion",
        data_md5="test-fixture",
        git_commit="0" * 40,
        decision="promoted: image test",
        sequence=1,
        timestamp=now_utc(),
        who="tests/containers",
    )
    directory = root / "champion"
    build_champion(model_bundle_dir, directory, record, key)
    _readable_by_all(directory)
    return {"dir": directory, "public_key": public}


@pytest.fixture(scope="module")
def containers() -> Iterator[list[str]]:
    """Names of containers a module started; removed (by name) at the end."""
    names: list[str] = []
    yield names
    for name in names:
        podman("rm", "-f", "-t", "0", name, check=False, timeout=60)


def _start_api(images, champion, containers: list[str], **env: str) -> tuple[str, str]:
    port = free_port()
    name = f"housing-test-api-{port}"
    settings = {
        "LOCAL_MODEL_DIR": "/models",
        "MODEL_SOURCES": "local",
        "HOUSING_VERIFY_KEY_FILES": "/keys/verify.pub",
        "WANDB_MODE": "disabled",
        "RELOAD_INTERVAL_S": "0",
        **env,
    }
    containers.append(name)
    podman(
        "run",
        "-d",
        "--name",
        name,
        "-p",
        f"127.0.0.1:{port}:8000",
        "-v",
        f"{champion['dir']}:/models:ro",
        "-v",
        f"{champion['public_key']}:/keys/verify.pub:ro",
        *[f"--env={k}={v}" for k, v in settings.items()],
        images["api"].ref,
    )
    base = f"http://127.0.0.1:{port}"
    _wait(f"{base}/ready", name)
    return name, base


@pytest.fixture(scope="module")
def api(images, champion, containers) -> tuple[str, str]:
    """The API image serving the mounted champion on a published loopback port."""
    return _start_api(images, champion, containers)


# --- image contents -----------------------------------------------------------------------


def _image_files(tag: str) -> Iterator[tuple[str, Path]]:
    """(path relative to /, host path) of every file and symlink in the image's file system."""
    root = Path(podman("image", "mount", tag, timeout=120).stdout.strip())
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(root)
            for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
                yield (rel_dir / name).as_posix(), Path(dirpath) / name
            if rel_dir.as_posix() in {"proc", "sys", "dev"}:
                dirnames.clear()
    finally:
        podman("image", "unmount", tag, check=False, timeout=60)


@pytest.mark.parametrize("name", ["pipeline", "api", "app"])
def test_image_holds_no_tests_data_caches_or_secrets(images, name: str) -> None:
    host_ca = HOST_CA.read_bytes() if HOST_CA.is_file() else b""
    host_ca_digest = hashlib.sha256(host_ca).hexdigest()
    found: dict[str, list[str]] = {}
    count = 0
    for rel, path in _image_files(images[name].ref):
        count += 1
        if rel in ALLOWED and path.read_text(encoding="utf-8") == ALLOWED[rel]:
            continue
        for why in forbidden_reasons(rel):
            found.setdefault(why, []).append(rel)
        # The host's (intercepting) CA bundle is mounted for the build only, never baked in.
        if (
            host_ca
            and not path.is_symlink()
            and path.stat().st_size == len(host_ca)
            and hashlib.sha256(path.read_bytes()).hexdigest() == host_ca_digest
        ):
            found.setdefault("the build host's CA bundle", []).append(rel)
    assert count > 1000, f"listed only {count} files of {images[name].ref}"
    assert not found, {why: paths[:10] for why, paths in found.items()}


@pytest.mark.parametrize("name", ["pipeline", "api", "app"])
def test_image_config_non_root_with_healthcheck(images, name: str) -> None:
    tag = images[name].ref
    config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", tag).stdout)
    assert config["User"].split(":")[0] not in {"", "0", "root"}
    health = json.loads(podman("image", "inspect", "--format", "{{json .HealthCheck}}", tag).stdout)
    assert health and health["Test"][0] == "CMD", "HEALTHCHECK lost (OCI format drops it)"
    assert images[name].size_bytes > 0


# --- the API image ------------------------------------------------------------------------

# Distributions the API never imports (import names and dist-info prefixes), so its image
# must not carry them: the model-fitting stack, the trackers, gcsfs's tree. wandb comes in
# only with --build-arg WITH_WANDB=1.
API_FORBIDDEN = {
    "sklearn": "scikit_learn",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "skops": "skops",
    "mlflow": "mlflow",
    "wandb": "wandb",
    "scipy": "scipy",
    "gcsfs": "gcsfs",
}
API_MAX_BYTES = 250 * 1000**2  # 250 MB, as podman counts them


def _site_packages(tag: str) -> set[str]:
    """Top-level names in the image's site-packages directories (modules and dist-infos)."""
    names: set[str] = set()
    for rel, _ in _image_files(tag):
        parts = rel.split("/")
        if "site-packages" in parts:
            rest = parts[parts.index("site-packages") + 1 :]
            if len(rest) > 1 or rest[0].endswith((".py", ".so", ".pth")):
                names.add(rest[0])
    return names


def test_api_image_carries_only_what_serve_imports(images) -> None:
    names = _site_packages(images["api"].ref)
    lowered = {n.lower() for n in names}
    found = sorted(
        name
        for name in lowered
        for module, dist in API_FORBIDDEN.items()
        if name == module or name.startswith((f"{module}-", f"{dist}-", f"{module}_"))
    )
    assert not found, f"the API image carries {found}"
    # The listing itself works: what the API does import is there.
    for needed in (
        "numpy",
        "pykdtree",
        "lightgbm",
        "fastapi",
        "uvicorn",
        "housing",
        "google",
        "requests",
    ):
        assert needed in lowered, (needed, sorted(lowered)[:80])


def test_api_image_size_is_bounded(images) -> None:
    size = images["api"].size_bytes
    assert size <= API_MAX_BYTES, f"API image {size / 1e6:.0f} MB > {API_MAX_BYTES / 1e6:.0f} MB"


def test_api_image_without_wandb_serves_and_warns_once(images, champion, containers) -> None:
    """WANDB_MODE at the image's default (offline) without wandb in the image: one warning,
    and prices as ever."""
    name, base = _start_api(images, champion, containers, WANDB_MODE="offline")
    path, body = _readme_predict_example()
    for _ in range(3):
        status, answer = _request(f"{base}{path}", body, timeout=30)
        assert status == 200, answer
    log = logs(name)
    assert log.count("wandb is not installed") == 1, log


def test_api_image_serves_the_signed_champion(api) -> None:
    name, base = api
    status, health = _request(f"{base}/health")
    assert status == 200 and health["status"] == "ok"
    status, ready = _request(f"{base}/ready")
    assert status == 200, ready
    _healthy(name)

    path, body = _readme_predict_example()
    status, answer = _request(f"{base}{path}", body, timeout=30)
    assert status == 200, answer
    price = answer["predictions"][0]["predicted_price"]
    assert isinstance(price, float) and price > 0


def test_api_image_bad_input_names_the_field(api) -> None:
    _, base = api
    path, body = _readme_predict_example()
    body["instances"][0]["median_income"] = "rich"
    status, answer = _request(f"{base}{path}", body)
    assert status == 422, answer
    fields = [f["field"] for f in answer["error"]["fields"]]
    assert any("median_income" in f for f in fields), answer


def test_api_image_drains_on_sigterm(images, champion, containers) -> None:
    """`podman stop` (SIGTERM): /ready turns 503, requests are still served through the grace
    period (those in flight at the signal included), then the process exits 0 before SIGKILL.

    A request that reaches the listener as it closes may be refused or reset: that one was
    never accepted. Every request started before the grace period ends must get its answer.
    """
    grace = 3.0
    name, base = _start_api(images, champion, containers, SHUTDOWN_GRACE_S=str(grace))
    path, body = _readme_predict_example()
    batch = {"instances": body["instances"] * 500}  # 500 rows, scored off the event loop
    outcomes: list[tuple[float, float, str]] = []  # (started, ended, "200" or the error)
    stop_sending = threading.Event()

    def send() -> None:
        while not stop_sending.is_set():
            began = time.monotonic()
            try:
                status, _ = _request(f"{base}{path}", batch, timeout=30)
                outcomes.append((began, time.monotonic(), str(status)))
            except (OSError, http.client.HTTPException) as exc:
                outcomes.append((began, time.monotonic(), repr(exc)))
                time.sleep(0.05)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.monotonic() + 60  # requests flowing (one answered) before the signal
    while not outcomes:
        assert time.monotonic() < deadline, "no batch was answered before the signal"
        time.sleep(0.05)
    signalled = time.monotonic()  # podman delivers SIGTERM a little after this
    stop = subprocess.Popen(
        ["podman", "--runtime", "runc", "stop", "-t", str(STOP_GRACE_S), name],
        env=podman_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait(f"{base}/ready", name, expect=503, timeout=10)
    draining_seen = time.monotonic()
    stop.wait(timeout=STOP_GRACE_S + 30)
    stop_sending.set()
    sender.join(timeout=40)

    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    # Exit 0 is the drain's own: podman's SIGKILL at STOP_GRACE_S would leave 137.
    assert exit_code == "0", f"exit {exit_code} after SIGTERM\n{logs(name)}"
    # Within the grace period (with a second's margin for podman's own delay) all answered.
    must_answer = [o for o in outcomes if o[0] < signalled + grace - 1.0]
    assert must_answer and all(o[2] == "200" for o in must_answer), must_answer
    in_flight = [o for o in outcomes if o[0] < signalled < o[1]]
    assert all(o[2] == "200" for o in in_flight), in_flight
    served_while_draining = [o for o in outcomes if o[0] > draining_seen and o[2] == "200"]
    assert served_while_draining, "no request was served after /ready turned 503"


def test_api_image_with_wandb_build_arg_logs_predictions(images, champion, containers) -> None:
    """--build-arg WITH_WANDB=1: the same image plus wandb, whose offline prediction log then
    runs (no warning about wandb missing)."""
    from scripts.images.build import IMAGE_CA, LOG_DIR, Built

    tag = "localhost/housing-api:with-wandb-test"
    args = ["build", "--format", "docker", "--network", "host", "--layers"]
    args += ["--build-arg", f"BASE_IMAGE={images['api'].base}", "--build-arg", "WITH_WANDB=1"]
    if HOST_CA.is_file():
        args += ["-v", f"{HOST_CA}:{IMAGE_CA}:ro"]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    iidfile = LOG_DIR / "api-with-wandb.iid"
    args += ["--iidfile", str(iidfile), "-f", "serve/Dockerfile", "-t", tag, str(REPO_ROOT)]
    podman(*args, timeout=1800, log=LOG_DIR / "api-with-wandb.log")
    image_id = iidfile.read_text(encoding="utf-8").strip().removeprefix("sha256:")
    names = {n.lower() for n in _site_packages(image_id)}
    assert "wandb" in names and "sklearn" not in names and "scipy" not in names
    name, base = _start_api(
        {"api": Built("api", tag, images["api"].base, 0.0, 0, image_id=image_id)},
        champion,
        containers,
        WANDB_MODE="offline",
        PREDICTION_LOG_FLUSH_S="0.5",
    )
    path, body = _readme_predict_example()
    status, answer = _request(f"{base}{path}", body, timeout=30)
    assert status == 200, answer
    # The first flush starts the W&B run in the logger's thread (a few seconds offline).
    deadline = time.monotonic() + 90
    while True:
        done = podman("exec", name, "sh", "-c", "ls -d /tmp/wandb/offline-run-*", check=False)
        if done.returncode == 0 and "offline-run-" in done.stdout:
            break
        assert time.monotonic() < deadline, f"no offline W&B run\n{logs(name)}"
        time.sleep(1)
    assert "wandb is not installed" not in logs(name)


# --- the app image ------------------------------------------------------------------------


def test_app_image_prices_a_district_through_the_api(images, api, containers) -> None:
    _, api_base = api
    port = free_port()
    name = f"housing-test-app-{port}"
    containers.append(name)
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "--env=HOST=127.0.0.1",
        f"--env=PORT={port}",
        f"--env=API_URL={api_base}",
        images["app"].ref,
    )
    assert _wait(f"http://127.0.0.1:{port}/_stcore/health", name) == b"ok"
    _healthy(name)
    # The page's own path to a price: the app's settings and client, inside the app container.
    script = (
        "import json\n"
        "from app.client import ApiClient\n"
        "from app.settings import AppSettings\n"
        "settings = AppSettings.from_env()\n"
        "with ApiClient(settings.api_url) as client:\n"
        "    client.ready()\n"
        "    example = client.contract()['example']\n"
        "    print(json.dumps(client.predict([example])))\n"
    )
    done = podman("exec", name, "python", "-c", script, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["predictions"][0]["predicted_price"] > 0
    assert answer["model_name"] == "housing_price_model"


# --- the pipeline image -------------------------------------------------------------------


def test_pipeline_image_healthcheck_passes(images, containers) -> None:
    """The batch image's probe (`dvc version`) passes in a container idling on `sleep`."""
    name = f"housing-test-pipeline-{os.getpid()}"
    containers.append(name)
    podman("run", "-d", "--name", name, "--network", "none", images["pipeline"].ref, "sleep", "120")
    _healthy(name)


def test_pipeline_image_reproduces_on_a_sample(images, housing_df, tmp_path: Path) -> None:
    """`dvc repro` (the image's CMD) in a mounted checkout, offline, data mirror read-only."""
    sample = stratified_sample(housing_df, 4_000, tmp_path / "sample.csv")
    params = sample_params(sample)
    repo = make_pipeline_repo(tmp_path / "repo", params=params)
    write_keypair(repo / ".keys")  # what `make install` leaves in a checkout
    for path in [repo, *repo.rglob("*")]:
        os.chown(path, IMAGE_UID, IMAGE_UID, follow_symlinks=False)
    done = podman(
        "run",
        "--rm",
        "--no-healthcheck",  # a one-shot job: no probe timers (no systemd here either)
        "--network",
        "none",
        "-v",
        f"{repo}:/workspace",
        "-v",
        f"{sample}:/data/housing.csv:ro",
        "--env=HOUSING_DATA_MIRROR=/data/housing.csv",
        "--env=WANDB_MODE=disabled",
        "--env=DVC_NO_ANALYTICS=1",
        "--env=GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false",
        images["pipeline"].ref,
        check=False,
        timeout=1500,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert ran_stages(done.stdout) == [
        "download",
        "split",
        "preprocess",
        "featurize",
        "select",
        "sweep",
        "register",
    ], done.stdout[-3000:]
    assert (repo / "models/model.skops").stat().st_size > 0
    assert (repo / "models/model.json").is_file()
    assert (repo / "dvc.lock").is_file()
    # The stage found the checkout's development key itself, as outside the container.
    log = done.stdout + done.stderr
    assert "signing with the development key .keys/signing-key.pem" in log, log[-3000:]
    assert (repo / "champion" / "model.sig").is_file()
