"""The monitoring end to end, with traffic shaped like the real thing (issue 24, item 7).

The test split of a real pipeline run is replayed through a real API (uvicorn, the run's
champion, the feature log on) by scripts/replay_traffic.py: unchanged, with incomes x 1.5,
and inland districts only. ``housing-monitor`` then judges each replay's time window of the
feature log against the champion's reference, as a scheduled job would; the drift gauges
recorded after the income replay are fed to the real alert rules with promtool.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from make_serve_support import free_port, get

REPO_ROOT = Path(__file__).resolve().parents[2]
REPLAY = REPO_ROOT / "scripts" / "replay_traffic.py"
# What the inland-only replay flags (docs/monitoring.md lists the same, with each PSI).
INLAND_FLAGS = [
    "housing_median_age",
    "latitude",
    "longitude",
    "median_income",
    "ocean_proximity",
]

pytestmark = pytest.mark.timeout(600)


def _now() -> str:
    time.sleep(0.01)  # log times are in milliseconds: no record on a boundary
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _metrics(url: str) -> dict[str, float]:
    status, body = get(f"{url}/metrics")
    assert status == 200
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _replay(url: str, test_split: Path, shift: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPLAY), "--api", url, "--data", str(test_split), "--shift", shift],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _written_all(url: str, before: float) -> float:
    """Wait until the feature log wrote every instance priced so far; return the count."""
    deadline = time.monotonic() + 60
    while True:
        m = _metrics(url)
        priced = sum(v for k, v in m.items() if k.startswith("predictions_total{"))
        if m.get("feature_log_written_total", 0) >= priced > before:
            return priced
        assert time.monotonic() < deadline, "the feature log never caught up"
        time.sleep(0.2)


def _monitor(tmp: Path, repo: Path, log: Path, since: str, until: str, name: str):
    out = tmp / name
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "housing-monitor"),
            "--log-dir",
            str(log),
            "--champion",
            str(repo / "champion"),
            "--since",
            since,
            "--until",
            until,
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,  # the committed params.yaml's monitor section
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary = json.loads((out / "summary.json").read_text()) if done.returncode < 2 else None
    return done, summary


@pytest.fixture(scope="module")
def replays(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """The three replays through one API, their time windows and the gauges after each."""
    tmp = tmp_path_factory.mktemp("replay")
    log = tmp / "features"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MLFLOW_TRACKING_URI", "GCS_BUCKET", "HOUSING_VERIFY_KEYS"}
    } | {
        "MODEL_SOURCES": "local",
        "LOCAL_MODEL_DIR": str(pipeline_repo / "champion"),
        "FEATURE_LOG_DIR": str(log),
        "DRIFT_WINDOW": "2000",
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "SHUTDOWN_GRACE_S": "0",
    }
    server_log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serve.main:app", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while get(f"{url}/ready")[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline, "the API never got ready"
            time.sleep(0.2)
        test_split = pipeline_repo / "data" / "split" / "test.parquet"
        marks, gauges, priced = [_now()], {}, 0.0
        for shift in ("none", "income", "inland"):
            _replay(url, test_split, shift)
            priced = _written_all(url, priced)
            gauges[shift] = _metrics(url)
            marks.append(_now())
        monitoring = json.loads(get(f"{url}/api/v1/monitoring")[1])
    finally:
        proc.terminate()
        proc.wait(30)
        server_log.close()
    return {
        "tmp": tmp,
        "repo": pipeline_repo,
        "log": log,
        "marks": marks,
        "gauges": gauges,
        "monitoring": monitoring,
    }


def _window(replays, i: int, name: str):
    marks = replays["marks"]
    return _monitor(replays["tmp"], replays["repo"], replays["log"], marks[i], marks[i + 1], name)


def test_unchanged_traffic_flags_nothing(replays):
    done, summary = _window(replays, 0, "unchanged")
    assert done.returncode == 0, done.stderr
    assert summary["rows"] == 4128 and summary["alerts"] == []
    assert summary["drift"]["flagged"] == [] and not summary["drift"]["prediction_flagged"]
    assert max(d["psi"] for d in summary["drift"]["features"].values()) < 0.02
    html = (replays["tmp"] / "unchanged" / "report.html").read_text()
    assert "No alert." in html and "median_income" in html
    calm = replays["gauges"]["none"]
    assert max(v for k, v in calm.items() if k.startswith("feature_drift_psi{")) < 0.05


def test_incomes_times_one_and_a_half_flag_income_alone(replays):
    done, summary = _window(replays, 1, "income")
    assert done.returncode == 1, done.stderr
    assert summary["drift"]["flagged"] == ["median_income"]
    assert summary["drift"]["features"]["median_income"]["psi"] > 0.5
    # Richer districts are priced higher: the prices move too, explained by the input.
    _, calm = _window(replays, 0, "unchanged-again")
    moved_prices = summary["drift"]["prediction"]["psi"]
    assert moved_prices > 5 * calm["drift"]["prediction"]["psi"]
    assert "alert: median_income drifted" in done.stderr
    moved = replays["gauges"]["income"]
    assert moved['feature_drift_psi{feature="median_income"}'] > 0.5
    others = [
        v for k, v in moved.items() if k.startswith("feature_drift_psi{") and "income" not in k
    ]
    assert max(others) < 0.05
    # Incomes past the contract's bound are refused, and counted by field.
    assert set(replays["monitoring"]["refused_by_field"]) == {"median_income"}


def test_inland_only_flags_what_the_docs_list(replays):
    done, summary = _window(replays, 2, "inland")
    assert done.returncode == 1, done.stderr
    assert sorted(summary["drift"]["flagged"]) == INLAND_FLAGS
    docs = (REPO_ROOT / "docs" / "monitoring.md").read_text()
    listed = re.search(r"<!-- inland-flags -->(.*?)<!-- /inland-flags -->", docs, re.S)
    assert listed, "docs/monitoring.md lists the inland replay's flags between markers"
    assert sorted(re.findall(r"`([a-z_]+)`", listed[1])) == INLAND_FLAGS


def test_the_drift_alert_fires_on_the_gauges_the_shifted_replay_left(replays, tmp_path):
    from deploy.promtool_support import run_rule_test

    moved = replays["gauges"]["income"]
    psi = moved['feature_drift_psi{feature="median_income"}']
    window = moved["drift_window_instances"]
    labels = 'job="housing-api",instance="api:8000"'
    done = run_rule_test(
        tmp_path,
        {
            f'feature_drift_psi{{{labels},feature="median_income"}}': f"{psi}x30",
            f"drift_window_instances{{{labels}}}": f"{window}x30",
        },
        "FeatureDrift",
        "15m",
        [
            {
                "exp_labels": {
                    "severity": "warning",
                    "job": "housing-api",
                    "instance": "api:8000",
                    "feature": "median_income",
                }
            }
        ],
    )
    assert done.returncode == 0, done.stdout + done.stderr
