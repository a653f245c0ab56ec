"""bench/serve_load.py end to end in quick mode (structure, never timings), and its parsers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.report import Target, evaluate, markdown  # noqa: E402
from bench.wrk import WrkError, parse_report  # noqa: E402

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8000/api/v1/predict
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.33us  301.10us  12.40ms   95.10%
    Req/Sec     1.20k    80.12     1.31k    70.00%
  Latency Distribution
     50%  750.00us
     75%  820.00us
     90%    0.95ms
     99%    2.10ms
  2400 requests in 2.00s, 600.00KB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1199.50
Transfer/sec:    300.00KB
"""
SCENARIOS = ("single_1c", "single_8c", "batch100_1c")
LOAD_KEYS = {"p50_ms", "p99_ms", "max_ms", "rps", "requests", "failed"}


def test_wrk_report_is_parsed_in_milliseconds():
    result = parse_report(WRK_OUTPUT)
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (0.75, 2.1, 12.4)
    assert (result.rps, result.requests, result.failed) == (1199.5, 2400, 3)
    with pytest.raises(WrkError, match="unreadable"):
        parse_report("wrk: connection refused")


def test_targets_pass_miss_and_not_measurable():
    assert Target("t", 1.0, 2.0).verdict == "PASS"
    assert Target("t", 3.0, 2.0).verdict == "MISS"
    assert Target("t", 3.0, 2.0, at_least=True).verdict == "PASS"
    assert Target("t", None, 2.0).verdict == "n/a"
    report = {
        "ours": {"single_1c": {"p50_ms": 1.0, "p99_ms": 4.0}},
        "floor": {"single_1c": {"p50_ms": 0.5}},
        "model_time": {"available": True, "1_row": {"predict_ms": 0.3}},
    }
    by_name = {t.name: t for t in evaluate(report)}
    single = by_name["single p50 ≤ (a) + (b, 1 row) + 0.15 ms"]
    assert single.limit == pytest.approx(0.95)
    assert single.verdict == "MISS"
    assert by_name["single p99 ≤ 5 ms"].verdict == "PASS"
    assert by_name["(b, 100 rows) ≤ 8 ms"].verdict == "n/a"


@pytest.mark.slow
def test_quick_run_end_to_end(model_bundle_dir, tmp_path):
    out = tmp_path / "result.json"
    run = subprocess.run(
        [
            sys.executable,
            "bench/serve_load.py",
            "--quick",
            "--model-dir",
            str(model_bundle_dir),
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    for side in ("ours", "floor", "skops"):
        for scenario in SCENARIOS:
            assert set(report[side][scenario]) >= LOAD_KEYS
            assert report[side][scenario]["requests"] > 0
            assert report[side][scenario]["failed"] == 0
        assert report[side]["start_to_ready_s"] > 0
        assert report[side]["peak_rss_mib"] > 0
    for probe in ("health", "ready"):
        assert report["ours"]["during_batch1000"][probe]["requests"] > 0
    assert report["make_serve"]["source"].startswith("registry")
    assert report["make_serve"]["alias"] == "champion"
    assert report["model_time"]["available"] is True, report["model_time"]
    for rows in ("1_row", "100_rows"):
        assert report["model_time"][rows]["predict_ms"] > 0
        assert report["model_time"][rows]["booster_ms"] > 0
    assert {t["verdict"] for t in report["targets"]} <= {"PASS", "MISS"}
    assert len(report["targets"]) == 9
    assert report["machine"]["cpu"] and len(report["machine"]["loadavg_start"]) == 3
    table = markdown(report)
    assert table in run.stdout
    assert "| measure | ours | (a) floor | (c) skops |" in table
