"""Exact rebuild through a gs:// remote: push with run cache, clone, pull, same API prices.

The remote is the committed `gcs` remote, pointed at a local GCS emulator through
`.dvc/config.local` in each clone (as docs/remote.md tells users to do).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from make_serve_support import get, running_make_serve, user_env
from pipeline_support import dvc, lock_outs, promotion_keys, ran_stages
from readme_support import readme_argv
from remote_support import DVC_ENV, clone, md5_file, out_md5_matches, serve_support

pytestmark = pytest.mark.slow

STAGES = ("download", "split", "preprocess", "featurize", "select", "sweep", "register")


def _sample_districts(repo: Path, n: int = 25) -> list[dict]:
    """Real districts from the pulled test split, in the API's request shape."""
    import pandas as pd

    from housing.contract import TARGET

    frame = pd.read_parquet(repo / "data" / "split" / "test.parquet").head(n)
    rows = json.loads(frame.drop(columns=[TARGET]).to_json(orient="records"))
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def test_pull_in_a_fresh_clone_restores_every_output_exactly_and_make_serve_serves_it(
    pushed, tmp_path, mirror_csv
):
    """Clone, `make serve`, the README's `dvc pull`: every output's md5 is dvc.lock's, status
    clean, repro a no-op, and the running API serves the team's published champion, which
    it verifies with the committed keys/team.pub alone (a clone has no development key).
    Before the pull, its 503 names the step that works: `dvc pull champion.dvc`."""
    from housing.signing import key_id
    from housing.signing.keys import load_public_pem

    repo = clone(pushed.repo, tmp_path / "clone", pushed.endpoint, pushed.bucket)
    outs = lock_outs(repo)
    cached = [p for p in outs if not (repo / p).exists()]
    assert "models/model.skops" in cached  # the clone really starts without the data
    assert not (repo / ".keys").exists()

    program, *args = readme_argv("dvc pull")
    assert program == "dvc"
    log = tmp_path / "make-serve.log"
    with running_make_serve(repo, user_env(mirror_csv), log, shared_venv=True) as api:
        api.wait(
            "the first load attempt",
            lambda: b"model loading" not in get(f"{api.base_url}/ready")[1],
        )
        status, body = get(f"{api.base_url}/ready")
        assert status == 503 and b"`dvc pull champion.dvc` restores the published one" in body
        pull = dvc(repo, *args, mirror=mirror_csv, env=DVC_ENV)
        api.wait("the pulled champion served", api.ready, timeout=120)  # reload: every 30 s
        served = api.json("/api/v1/model")
    published = json.loads((pushed.repo / "champion" / "promotion.json").read_text())
    team = key_id(load_public_pem((repo / "keys" / "team.pub").read_bytes()))
    assert served["signed"] is True and served["key_id"] == team, served
    assert served["source"] == "local" and served["version"] == published["version"]

    for path, md5 in outs.items():
        assert out_md5_matches(repo, path, md5), f"{path} differs from dvc.lock after pull"
    assert md5_file(repo / "models" / "model.skops") == md5_file(
        pushed.repo / "models" / "model.skops"
    )
    assert "models/model.skops" in pull.stdout
    status = dvc(repo, "status", mirror=mirror_csv, env=DVC_ENV).stdout
    assert "Data and pipelines are up to date." in status
    repro = dvc(repo, "repro", mirror=mirror_csv, env=DVC_ENV).stdout
    assert ran_stages(repro) == []
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in repro


def test_api_on_the_pulled_champion_answers_the_same_prices(pushed, tmp_path, mirror_csv):
    """Real uvicorn on the original champion and on the pulled one: the same signed champion,
    identical predictions; the pulled candidate in models/ is refused."""
    repo = clone(pushed.repo, tmp_path / "clone", pushed.endpoint, pushed.bucket)
    assert not (repo / "champion").exists()
    dvc(repo, "pull", "champion.dvc", mirror=mirror_csv, env=DVC_ENV)
    dvc(repo, "pull", "register", mirror=mirror_csv, env=DVC_ENV)
    dvc(repo, "pull", "split", mirror=mirror_csv, env=DVC_ENV)
    body = {"instances": _sample_districts(repo)}
    support = serve_support()
    verify = {"HOUSING_VERIFY_KEY_FILES": str(promotion_keys()[1])}
    answers = []
    for champion in (pushed.repo / "champion", repo / "champion"):
        env = {"MODEL_SOURCES": "local", "LOCAL_MODEL_DIR": str(champion), **verify}
        with support.running_uvicorn(tmp_path, **env) as server:
            response = httpx.post(f"{server.base_url}/api/v1/predict", json=body, timeout=30)
            assert response.status_code == 200, response.text
            model = httpx.get(f"{server.base_url}/api/v1/model", timeout=10).json()
            assert model["signed"] is True and model["promotion"]["sequence"] == 1
            prices = [p["predicted_price"] for p in response.json()["predictions"]]
            answers.append((model["sha256"], model["version"], prices))
    (sha_original, v_original, original), (sha_pulled, v_pulled, pulled) = answers
    assert (sha_pulled, v_pulled) == (sha_original, v_original)
    assert len(pulled) == len(body["instances"]) and min(pulled) > 0
    assert pulled == original

    # The candidate the stage wrote (pulled too) is never served, keys or not.
    for env in (verify, {}):
        candidate = {"MODEL_SOURCES": "local", "LOCAL_MODEL_DIR": str(repo / "models"), **env}
        with support.running_uvicorn(tmp_path, wait_ready=False, **candidate) as server:
            deadline = time.monotonic() + 60
            while (info := httpx.get(f"{server.base_url}/api/v1/model", timeout=10).json())[
                "load_errors"
            ] == [] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert httpx.get(f"{server.base_url}/ready", timeout=10).status_code == 503
            assert info["version"] is None
            assert any("not a promoted champion" in e for e in info["load_errors"]), info


def test_repro_pull_in_a_fresh_clone_recomputes_nothing(pushed, tmp_path, mirror_csv):
    """`dvc repro --pull` fetches what it needs instead of running any stage."""
    repo = clone(pushed.repo, tmp_path / "clone", pushed.endpoint, pushed.bucket)
    out = dvc(repo, "repro", "--pull", mirror=mirror_csv, env=DVC_ENV).stdout
    assert ran_stages(out) == []
    assert "Pulling data for stage: 'register'" in out
    for path, md5 in lock_outs(repo).items():
        assert out_md5_matches(repo, path, md5), path
    # The champion is no stage's input, so `repro --pull` leaves it; `dvc pull` brings it.
    status = dvc(repo, "status", mirror=mirror_csv, env=DVC_ENV).stdout
    assert status.strip() == "champion.dvc:\n\tchanged outs:\n\t\tnot in cache:       champion"
    dvc(repo, "pull", "champion.dvc", mirror=mirror_csv, env=DVC_ENV)
    status = dvc(repo, "status", mirror=mirror_csv, env=DVC_ENV).stdout
    assert "Data and pipelines are up to date." in status
