"""Exact rebuild through a gs:// remote: push with run cache, clone, pull, same API prices.

The remote is the committed `gcs` remote, pointed at a local GCS emulator through
`.dvc/config.local` in each clone (as docs/remote.md tells users to do).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from make_serve_support import get, running_make_serve, user_env
from pipeline_support import dvc, lock_outs, ran_stages
from readme_support import readme_argv
from remote_support import DVC_ENV, clone, md5_file, out_md5_matches

pytestmark = pytest.mark.slow

STAGES = ("download", "split", "preprocess", "featurize", "select", "sweep", "register")


def _sample_districts(repo: Path, n: int = 25) -> list[dict]:
    """Real districts from the pulled test split, in the API's request shape."""
    import pandas as pd

    from housing.contract import TARGET

    frame = pd.read_parquet(repo / "data" / "split" / "test.parquet").head(n)
    rows = json.loads(frame.drop(columns=[TARGET]).to_json(orient="records"))
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def _tree_md5(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): md5_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


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
        body = {"instances": _sample_districts(repo)}
        answer = httpx.post(f"{api.base_url}/api/v1/predict", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    prices = [p["predicted_price"] for p in answer.json()["predictions"]]
    assert len(prices) == len(body["instances"]) and min(prices) > 0
    # The pulled champion is the published one, file for file: the same prices.
    assert _tree_md5(repo / "champion") == _tree_md5(pushed.repo / "champion")
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
