"""The feature log (serve/feature_log.py): every scored instance as a JSON line, off the
request path, size-bounded, sampled, and never the cause of a failed request."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from serve_support import settings_for

from serve.feature_log import LOG_FILE, Batch, FeatureLog
from serve.main import create_app


def _batch(n: int, request_id: str = "r1") -> Batch:
    return Batch(
        instances=[{"median_income": 3.0 + i, "ocean_proximity": "INLAND"} for i in range(n)],
        prices=[100_000.0 + i for i in range(n)],
        lows=[80_000.0] * n,
        highs=[120_000.0] * n,
        model_name="housing_price_model",
        model_version="7",
        request_id=request_id,
        at=1_765_000_000.0,
    )


def _records(directory: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(directory.glob(f"{LOG_FILE}*"))
        for line in path.read_text().splitlines()
    ]


def test_each_instance_is_one_line_with_its_fields_price_interval_and_lineage(tmp_path):
    log = FeatureLog(tmp_path)
    log.start()
    log.submit(_batch(3))
    log.stop()
    records = _records(tmp_path)
    assert len(records) == 3
    assert records[0] == {
        "at": "2025-12-06T05:46:40.000+00:00",
        "request_id": "r1",
        "model": "housing_price_model",
        "version": "7",
        "price": 100_000.0,
        "low": 80_000.0,
        "high": 120_000.0,
        "features": {"median_income": 3.0, "ocean_proximity": "INLAND"},
    }


def test_rotation_keeps_the_log_within_its_bound(tmp_path):
    counts = {"written": 0.0}
    log = FeatureLog(
        tmp_path,
        max_bytes=4_096,
        backups=2,
        on_written=lambda n: counts.__setitem__("written", counts["written"] + n),
    )
    log.start()
    for i in range(60):
        log.submit(_batch(10, request_id=f"r{i}"))
    log.stop()
    files = sorted(tmp_path.glob(f"{LOG_FILE}*"))
    assert [f.name for f in files] == [LOG_FILE, f"{LOG_FILE}.1", f"{LOG_FILE}.2"]
    assert sum(f.stat().st_size for f in files) <= 4_096 * 3
    assert counts["written"] == 600  # every line was written; the oldest were rotated away
    newest = (tmp_path / LOG_FILE).read_text().splitlines()[-1]
    assert json.loads(newest)["request_id"] == "r59"  # the current file has the newest


def test_sampling_keeps_the_configured_share(tmp_path):
    log = FeatureLog(tmp_path, sample_rate=0.25, seed=3)
    log.start()
    for i in range(40):
        log.submit(_batch(25, request_id=f"r{i}"))
    log.stop()
    assert 200 <= len(_records(tmp_path)) <= 300  # 25 % of 1,000, seeded


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path):
    dropped = []
    log = FeatureLog(tmp_path, queue_size=2, on_drop=dropped.append)  # not started: no reader
    for _ in range(5):
        log.submit(_batch(4))
    assert dropped == [4.0, 4.0, 4.0]


def test_a_read_only_log_never_fails_a_request(champion_dir, tmp_path, example):
    """A read-only directory (a file in the log's place: even root cannot write through it)
    makes every write fail: counted, logged once, and every request still answers 200."""
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the log directory should be")
    settings = settings_for(champion_dir, feature_log_dir=blocked / "log")
    with TestClient(create_app(settings)) as client:
        for _ in range(5):
            response = client.post("/api/v1/predict", json={"instances": [example] * 3})
            assert response.status_code == 200, response.text
        state = client.app.state.serve
        state.feature_log.flush()
        metrics = client.get("/metrics").text
    assert "feature_log_errors_total 15.0" in metrics
    assert "feature_log_written_total 0.0" in metrics  # a failed write is not a written one


def test_the_api_logs_what_it_priced(champion_dir, tmp_path, example):
    settings = settings_for(champion_dir, feature_log_dir=tmp_path / "log")
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/v1/predict", json={"instances": [example, example]})
        assert response.status_code == 200
        client.app.state.serve.feature_log.flush()
        metrics = client.get("/metrics").text
    body = response.json()
    records = _records(tmp_path / "log")
    assert len(records) == 2 and "feature_log_written_total 2.0" in metrics
    first = records[0]
    assert first["price"] == body["predictions"][0]["predicted_price"]
    assert first["low"] == body["predictions"][0]["interval"]["low"]
    assert first["request_id"] == body["request_id"]
    assert first["version"] == body["model_version"] and first["model"] == body["model_name"]
    assert first["features"]["median_income"] == example["median_income"]


# A mount namespace of the server's own (unshare: a user namespace maps the caller to root
# there, so no privilege is needed) with two real file systems: a read-only tmpfs and a
# 64 KiB one that fills up after a few hundred lines.
_MOUNTS = (
    'mount -t tmpfs -o ro,size=1m tmpfs "$1" && mount -t tmpfs -o size=64k tmpfs "$2" '
    '&& shift 2 && exec "$@"'
)


def _feature_log_counters(base_url: str) -> dict[str, float]:
    import httpx

    metrics = httpx.get(f"{base_url}/metrics", timeout=30).text
    return {
        line.split()[0]: float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith(("feature_log_errors_total", "feature_log_written_total"))
        or line.startswith("feature_log_dropped_total")
    }


def test_a_read_only_or_full_file_system_never_fails_a_request(champion_dir, tmp_path, example):
    """The API (real uvicorn) logging to a read-only file system, then to a full one: every
    request answers 200, the failed writes are counted, and the full disk's log holds what
    fitted."""
    import shutil
    import subprocess
    import sys
    import time

    import httpx
    from serve_support import running_uvicorn

    assert shutil.which("unshare"), "unshare (util-linux) is needed to mount test file systems"
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", _MOUNTS, "sh", ro, full, "true"], capture_output=True
    )
    assert probe.returncode == 0, probe.stderr  # the namespace works here
    for log_dir, requests in ((ro, 5), (full / "log", 60)):
        argv = ["unshare", "-rm", "sh", "-c", _MOUNTS, "sh", str(ro), str(full)]
        argv += [sys.executable, "-m", "serve"]
        with running_uvicorn(
            tmp_path,
            argv,
            HOST="127.0.0.1",
            MODEL_SOURCES="local",
            LOCAL_MODEL_DIR=str(champion_dir),
            FEATURE_LOG_DIR=str(log_dir),
            FEATURE_LOG_INTERVAL_S="0.01",
        ) as server:
            for _ in range(requests):
                answer = httpx.post(
                    f"{server.base_url}/api/v1/predict",
                    json={"instances": [example] * 10},
                    timeout=30,
                )
                assert answer.status_code == 200, answer.text
            sent = 10 * requests
            deadline = time.monotonic() + 30
            while True:  # the writer thread catches up after the last answer
                values = _feature_log_counters(server.base_url)
                if sum(values.values()) >= sent or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            errors = values["feature_log_errors_total"]
            written = values["feature_log_written_total"]
            assert errors > 0, (log_dir, values)
            assert errors + written + values["feature_log_dropped_total"] == sent, values
            logs = server.logs()
        assert "feature log" in logs.lower()
        if log_dir == ro:
            assert "Read-only file system" in logs
            assert written == 0
        else:
            assert "No space left on device" in logs
            assert 0 < written < 10 * requests  # some fitted, the rest failed


def test_a_batch_is_written_in_one_write_not_one_per_line(tmp_path, monkeypatch):
    """A write per line (a flush and two stat calls each) cost the writer thread more than
    the requests that made the lines; a 100-instance batch is one write now."""
    log = FeatureLog(tmp_path)
    writes = []
    real = log._handler.emit
    monkeypatch.setattr(log._handler, "emit", lambda record: writes.append(real(record)))
    log.start()
    log.submit(_batch(100, request_id="big"))
    log.stop()
    lines = (tmp_path / LOG_FILE).read_text().splitlines()
    assert len(lines) == 100 and all(json.loads(x)["request_id"] == "big" for x in lines)
    assert len(writes) == 1
