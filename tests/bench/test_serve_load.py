"""bench/serve_load.py end to end in quick mode (structure and verdicts, never timings), and
its parsers and target logic on fixed inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.report import (  # noqa: E402
    Target,
    evaluate,
    import_summary,
    markdown,
    package_cumulative_us,
    parse_importtime,
)
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
# -X importtime prints a module after what it imported, one level deeper.
IMPORTTIME = """import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _ctypes
import time:       400 |        500 | ctypes
{"level": "INFO", "message": "a log line in between"}
import time:      2000 |       2000 |     numpy.core
import time:      1000 |       3000 |   numpy
import time:       300 |        300 |     housing.serving.neighbors
import time:       200 |        500 |   housing.serving.loader
import time:       100 |       3600 | housing.serving
import time:      5000 |       5000 | fastapi
"""
FLOOR_IMPORTTIME = """import time:      5000 |       5000 | fastapi
import time:       100 |        100 |   _ctypes
import time:       400 |        500 | ctypes
"""
SCENARIOS = ("single_1c", "single_8c", "batch100_1c")
LOAD_KEYS = {"p50_ms", "p99_ms", "max_ms", "rps", "requests", "failed", "cpu_s", "wall_s"}
TARGET_NAMES = [
    "single, 1 conn, p50 ≤ (a) + (b, 1 row) + 0.15 ms",
    "single, 8 conn, req/s ≥ 50 % of (a)",
    "single, 8 conn, p99 ≤ 10 ms",
    "2 workers, 8 conn, req/s ≥ 1.7 x 1 worker",
    "100-batch, 1 conn, p50 ≤ 3 ms",
    "(b) model path, 100 rows, in process ≤ 2 ms",
    "start to ready, local champion ≤ (a) + 0.35 s",
    "start to ready, make serve ≤ local + 0.3 s",
    "peak RSS ≤ 150 MiB",
]


def test_wrk_report_is_parsed_in_milliseconds():
    result = parse_report(WRK_OUTPUT)
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (0.75, 2.1, 12.4)
    assert (result.rps, result.requests, result.failed) == (1199.5, 2400, 3)
    with pytest.raises(WrkError, match="unreadable"):
        parse_report("wrk: connection refused")


def test_importtime_is_parsed_with_what_each_package_imported():
    imports = parse_importtime(IMPORTTIME)
    assert [i.name for i in imports][:2] == ["_ctypes", "ctypes"]
    assert [i.depth for i in imports] == [1, 0, 2, 1, 2, 1, 0, 0]
    # housing.serving's loader is inside the package: counted once, with numpy inside it.
    assert package_cumulative_us(imports, "housing.serving") == 3600
    assert package_cumulative_us(imports, "numpy") == 3000
    assert package_cumulative_us(imports, "lightgbm") is None
    summary = import_summary(IMPORTTIME, FLOOR_IMPORTTIME)
    assert summary["total_ms"] == pytest.approx(9.1)
    assert summary["named_ms"]["housing.serving"] == pytest.approx(3.6)
    assert "lightgbm" not in summary["named_ms"]
    assert list(summary["top_level_ms"]) == ["fastapi", "housing.serving", "ctypes"]
    # Beyond the floor's imports: numpy and housing, not fastapi nor ctypes.
    assert summary["beyond_baseline_ms"] == pytest.approx(3.6)
    assert summary["beyond_baseline_by_package_ms"] == {"numpy": 3.0, "housing": 0.6}


def full_report(**changes: float) -> dict:
    """A report in which every target passes, with ``changes`` ("ours.single_1c.p50_ms")."""
    report = {
        "machine": {"loadavg_end_1m": 1.0},
        "ours": {
            "single_1c": {"p50_ms": 0.5},
            "single_8c": {"rps": 2000.0, "p99_ms": 8.0, "p50_ms": 4.0, "cpu_s": 0.5,
                          "wall_s": 5.0, "server_cpu_s": 4.9},
            "batch100_1c": {"p50_ms": 2.5},
            "start_to_ready_s": 1.2,
            "peak_rss_mib": 120.0,
        },
        "floor": {
            "single_1c": {"p50_ms": 0.3},
            "single_8c": {"rps": 3000.0, "p99_ms": 4.0},
            "batch100_1c": {"p50_ms": 1.0},
            "start_to_ready_s": 1.0,
            "peak_rss_mib": 55.0,
        },
        "ours_2w": {"single_8c": {"rps": 3600.0, "cpu_s": 1.0, "wall_s": 5.0,
                                  "server_cpu_s": 8.0}},
        "model_time": {"available": True, "scorer": "compiled",
                       "1_row": {"rows": 1, "predict_ms": 0.1, "booster_ms": 0.01},
                       "100_rows": {"rows": 100, "predict_ms": 1.5, "booster_ms": 0.9}},
        "make_serve": {"start_to_ready_s": 1.4},
        "imports": {"ours": {"beyond_baseline_ms": 120.0,
                             "beyond_baseline_by_package_ms": {"numpy": 70.0, "housing": 50.0}}},
    }  # fmt: skip
    for path, value in changes.items():
        *parents, key = path.split(".")
        node = report
        for part in parents:
            node = node[part]
        node[key] = value
    return report


def verdicts(report: dict) -> dict[str, Target]:
    return {t.name: t for t in evaluate(report)}


def test_every_target_passes_at_its_limit_and_names_what_it_is_set_against():
    targets = verdicts(full_report())
    assert list(targets) == TARGET_NAMES
    assert {t.verdict for t in targets.values()} == {"PASS"}
    limits = {name: t.limit for name, t in targets.items()}
    assert limits[TARGET_NAMES[0]] == pytest.approx(0.3 + 0.1 + 0.15)
    assert limits[TARGET_NAMES[1]] == pytest.approx(1500.0)
    assert targets[TARGET_NAMES[3]].value == pytest.approx(1.8)
    assert limits[TARGET_NAMES[6]] == pytest.approx(1.35)
    assert limits[TARGET_NAMES[7]] == pytest.approx(1.5)
    assert targets[TARGET_NAMES[1]].ratio == "0.67x (a)"


@pytest.mark.parametrize(
    ("change", "name", "by", "cause"),
    [
        ({"ours.single_1c.p50_ms": 0.7}, TARGET_NAMES[0], 0.15, "model's own 1-row time 0.100"),
        ({"ours.single_8c.rps": 1000.0}, TARGET_NAMES[1], 500.0, "the server used 49%"),
        ({"ours.single_8c.p99_ms": 12.0}, TARGET_NAMES[2], 2.0, "8 requests queue"),
        ({"ours_2w.single_8c.rps": 3000.0}, TARGET_NAMES[3], 0.2, "wrk used 10%"),
        ({"ours.batch100_1c.p50_ms": 3.5}, TARGET_NAMES[4], 0.5, "model path (b, 100 rows)"),
        ({"model_time.100_rows.predict_ms": 2.4}, TARGET_NAMES[5], 0.4, "booster (compiled)"),
        ({"ours.start_to_ready_s": 1.5}, TARGET_NAMES[6], 0.15, "numpy 70 ms"),
        ({"make_serve.start_to_ready_s": 1.6}, TARGET_NAMES[7], 0.1, "other 0.40 s"),
        ({"ours.peak_rss_mib": 160.0}, TARGET_NAMES[8], 10.0, "floor's process peaks at 55"),
    ],
)
def test_a_missed_target_says_by_how_much_and_why(change, name, by, cause):
    targets = verdicts(full_report(**change))
    missed = [t for t in targets.values() if t.verdict == "MISS"]
    assert [t.name for t in missed] == [name]
    assert missed[0].miss_by == pytest.approx(by)
    assert cause in missed[0].cause
    assert f"MISS {name} by " in markdown(_with_header(full_report(**change)))


def test_a_target_without_its_measurements_is_not_applicable():
    report = full_report()
    del report["ours_2w"], report["make_serve"], report["model_time"]
    targets = verdicts(report)
    assert targets[TARGET_NAMES[3]].verdict == "n/a"
    assert targets[TARGET_NAMES[7]].verdict == "n/a"
    assert targets[TARGET_NAMES[0]].verdict == "n/a"  # its limit needs (b)
    assert targets[TARGET_NAMES[2]].verdict == "PASS"
    assert Target("t", 3.0, 2.0, at_least=True).verdict == "PASS"
    assert Target("t", float("nan"), 2.0).verdict == "n/a"


def _with_header(report: dict) -> dict:
    return report | {
        "machine": {**report["machine"], "cpu": "cpu", "nproc": 2, "python": "3.11",
                    "loadavg_start": [1.0, 1.0, 1.0]},
        "duration_s": 1.0,
    }  # fmt: skip


from housing.serving.compiled import can_compile  # noqa: E402


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
    loads = {"ours": SCENARIOS, "floor": SCENARIOS, "ours_2w": ("single_8c",),
             "shadow": ("single_1c", "single_8c")}  # fmt: skip
    for side, scenarios in loads.items():
        for scenario in scenarios:
            result = report[side][scenario]
            assert set(result) >= LOAD_KEYS | {"server_cpu_s"}
            assert result["requests"] > 0 and result["failed"] == 0
            assert result["wall_s"] >= 1.0 and result["server_cpu_s"] > 0
    # wrk's own CPU time (reaped with os.wait4) is what the 2-worker target is read against.
    assert (
        0 < report["ours_2w"]["single_8c"]["cpu_s"] < report["ours_2w"]["single_8c"]["wall_s"] * 2
    )
    for side in ("ours", "floor", "make_serve"):
        assert report[side]["start_to_ready_s"] > 0
        assert len(report[side]["start_samples_s"]) == 1  # --quick: one start each
    assert report["ours"]["peak_rss_mib"] > 0 and report["floor"]["peak_rss_mib"] > 0
    # As shipped: the feature log on, the shadow off, W&B off.
    assert report["ours"]["feature_log_bytes"] > 0
    assert report["as_shipped"] == {
        "WANDB_MODE": "disabled", "SHADOW": "false", "FEATURE_LOG_DIR": "set", "workers": 1
    }  # fmt: skip
    assert report["shadow"]["loaded"] is True
    assert report["make_serve"]["model"]["source"].startswith("registry")
    assert report["make_serve"]["model"]["alias"] == "champion"
    # The scorer the API reports is the one (b) measured, compiled whenever this machine can.
    scorer = report["ours"]["scorer"]
    assert scorer == report["model_time"]["scorer"] == report["shadow"]["scorer"]
    assert scorer == ("compiled" if can_compile() else "lightgbm")
    assert report["model_time"]["available"] is True, report["model_time"]
    for rows in ("1_row", "100_rows"):
        assert report["model_time"][rows]["predict_ms"] > 0
    imports = report["imports"]
    assert imports["ours"]["named_ms"]["fastapi"] > 0 and "numpy" in imports["ours"]["named_ms"]
    assert "numpy" not in imports["floor"]["named_ms"]
    assert imports["ours"]["beyond_baseline_ms"] > 0
    assert [t["name"] for t in report["targets"]] == TARGET_NAMES
    for target in report["targets"]:
        assert target["verdict"] in {"PASS", "MISS"}, target
        if target["verdict"] == "MISS":
            assert target["miss_by"] > 0 and target["cause"], target
            assert f"MISS {target['name']} by" in run.stdout
    table = markdown(report)
    assert table in run.stdout
    assert "| measure | ours | (a) floor | ours / (a) | shadow on | shadow / ours |" in table
    assert f"scorer **{scorer}**" in table


def test_the_table_is_the_same_from_the_json_report():
    """The JSON sorts its keys by name: the table ranks imports by time, not by key order."""
    report = _with_header(full_report())
    report["imports"]["ours"] |= {
        "total_ms": 900.0,
        "top_level_ms": {"uvicorn": 150.0, "fastapi": 450.0},
        "by_package_ms": {"pydantic": 100.0, "fastapi": 280.0},
    }
    table = markdown(report)
    assert "fastapi 450, uvicorn 150" in table and "fastapi 280, pydantic 100" in table
    assert markdown(json.loads(json.dumps(report, sort_keys=True))) == table
