"""Prediction statistics: bounded queue, drops counted, requests never wait, windows aggregated."""

from __future__ import annotations

import threading

import pytest

from serve.prediction_log import PredictionLogger, PredictionRecord, aggregate


def _record(count: int = 2, mean: float = 100.0, latency: float = 1.0) -> PredictionRecord:
    return PredictionRecord(
        count=count, mean=mean, min=mean - 10, max=mean + 10, latency_ms=latency
    )


def test_aggregate_weights_means_by_count():
    row = aggregate([_record(1, 100.0, 1.0), _record(3, 200.0, 3.0)], dropped=4)
    assert row["requests"] == 2 and row["instances"] == 4
    assert row["prediction_mean"] == pytest.approx(175.0)
    assert row["prediction_min"] == 90.0 and row["prediction_max"] == 210.0
    assert row["latency_ms_mean"] == 2.0 and row["latency_ms_max"] == 3.0
    assert row["dropped_total"] == 4


def test_full_queue_drops_and_counts_without_waiting():
    release, stuck = threading.Event(), threading.Event()
    rows: list[dict] = []

    def stuck_sink(row: dict) -> None:  # a sink that hangs (e.g. a slow network)
        stuck.set()
        release.wait(10)
        rows.append(row)

    drops: list[int] = []
    log = PredictionLogger(stuck_sink, maxsize=5, flush_s=0.01, on_drop=lambda: drops.append(1))
    log.start()
    log.record(_record())
    assert stuck.wait(10), "the worker never reached the sink"  # it took the record, and hangs
    # If record() waited for room, this line would hang while the sink is stuck.
    accepted = [log.record(_record()) for _ in range(50)]
    assert accepted.count(True) == 5 and accepted.count(False) == 45
    assert log.dropped == 45 and len(drops) == 45
    release.set()
    log.stop()
    assert sum(r["instances"] for r in rows) == 2 * 6  # all accepted records were logged
    assert rows[-1]["dropped_total"] == 45


def test_stop_flushes_what_is_queued():
    rows: list[dict] = []
    closed: list[bool] = []
    log = PredictionLogger(
        rows.append, maxsize=100, flush_s=60, close_sink=lambda: closed.append(True)
    )
    log.start()
    for _ in range(7):
        log.record(_record(count=1))
    log.stop()
    assert sum(r["requests"] for r in rows) == 7
    assert closed == [True]


def test_sink_errors_do_not_kill_the_worker():
    calls: list[int] = []
    failed = threading.Event()

    def flaky(row: dict) -> None:
        calls.append(1)
        if len(calls) == 1:
            failed.set()
            raise RuntimeError("network down")

    log = PredictionLogger(flaky, maxsize=10, flush_s=0.01)
    log.start()
    log.record(_record())
    assert failed.wait(10), "the first window was never written"
    log.record(_record())
    log.stop()
    assert len(calls) == 2 and log.logged_windows == 1


def test_wandb_offline_sink_writes_a_run(tmp_path, monkeypatch):
    """The real W&B client in offline mode records the windows under WANDB_DIR."""
    from serve.prediction_log import WandbSink

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    sink = WandbSink(mode="offline", project="serve-test")
    log = PredictionLogger(sink, maxsize=10, flush_s=60, close_sink=sink.close)
    log.start()
    log.record(_record())
    log.stop(timeout=120)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


test_wandb_offline_sink_writes_a_run = pytest.mark.slow(test_wandb_offline_sink_writes_a_run)


def test_without_wandb_the_api_serves_and_warns_once(champion_dir):
    """WANDB_MODE's default (offline) in an API without wandb (the image's default): the app
    starts and prices, one warning says why nothing is logged, and no logger thread runs."""
    import subprocess
    import sys

    from serve_support import REPO_ROOT, server_env

    code = (
        "import sys, threading\n"
        "sys.modules['wandb'] = None  # as if not installed: import fails, find_spec is None\n"
        "from fastapi.testclient import TestClient\n"
        "from serve.config import Settings\n"
        "from serve.main import create_app\n"
        f"s = Settings(_env_file=None, model_sources=('local',), local_model_dir="
        f"{str(champion_dir)!r}, load_in_background=False)\n"
        "assert s.wandb_mode == 'offline', s.wandb_mode\n"
        "with TestClient(create_app(s)) as c:\n"
        "    assert c.get('/ready').status_code == 200\n"
        "    example = c.get('/api/v1/contract').json()['example']\n"
        "    for _ in range(3):\n"
        "        r = c.post('/api/v1/predict', json={'instances': [example]})\n"
        "        assert r.status_code == 200, r.text\n"
        "    assert c.app.state.serve.prediction_log.enabled is False\n"
        "    names = [t.name for t in threading.enumerate()]\n"
        "    assert 'prediction-log' not in names, names\n"
        "    metrics = c.get('/metrics').text\n"
        "    assert 'prediction_log_dropped_total 0.0' in metrics\n"
        "print('served')\n"
    )
    env = server_env()
    env.pop("WANDB_MODE", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("served")
    logs = result.stdout + result.stderr
    assert logs.count("wandb is not installed") == 1, logs[-3000:]


def test_a_sink_that_is_not_available_leaves_the_logger_idle():
    class Unavailable:
        available = False

        def __call__(self, row: dict) -> None:
            raise AssertionError("an unavailable sink is never called")

    drops: list[int] = []
    log = PredictionLogger(Unavailable(), maxsize=2, flush_s=0.01, on_drop=lambda: drops.append(1))
    log.start()
    assert [log.record(_record()) for _ in range(5)] == [False] * 5
    log.stop()
    assert log.dropped == 0 and drops == [] and log.logged_windows == 0
