"""deploy/prometheus/: the alert rules and the scrape configuration, checked with the real
promtool (Debian's prometheus 2.42), the rules' unit tests run, and the drift thresholds
held to params.yaml's `monitor` section."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from promtool_support import (
    ALERTS,
    ALERTS_TEST,
    CONFIG,
    REPO_ROOT,
    promtool,
    rules_by_alert,
    run_promtool,
    run_rule_test,
)

PARAMS = REPO_ROOT / "params.yaml"
ALERT_NAMES = {
    "FeatureDrift",
    "PredictionDrift",
    "HighErrorRate",
    "HighLatencyP99",
    "NoModelLoaded",
    "FeatureLogFailing",
    "ShadowDisagreement",
}
SEVERITIES = {"info", "warning", "critical"}
TARGET = 'job="housing-api",instance="api:8000"'


def _monitor() -> dict[str, Any]:
    """params.yaml's `monitor` section: the thresholds the drift rules must use."""
    params = yaml.safe_load(PARAMS.read_text(encoding="utf-8")) or {}
    monitor = params.get("monitor")
    if not isinstance(monitor, dict):
        pytest.fail(
            "params.yaml has no `monitor` section: the drift alert rules in "
            "deploy/prometheus/alerts.yml must use its psi_threshold and min_instances",
            pytrace=False,
        )
    missing = {"psi_threshold", "min_instances"} - set(monitor)
    if missing:
        pytest.fail(f"params.yaml's monitor section lacks {sorted(missing)}", pytrace=False)
    return monitor


def _out(done) -> str:
    return done.stdout + done.stderr


# --- promtool's own checks ------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    done = run_promtool("check", "rules", ALERTS)
    assert done.returncode == 0, _out(done)
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in _out(done)
    assert set(rules_by_alert()) == ALERT_NAMES


def test_promtool_checks_the_config_and_the_rules_it_loads(tmp_path: Path) -> None:
    """Run from elsewhere, as the container does: rule_files resolve beside prometheus.yml."""
    done = run_promtool("check", "config", CONFIG, cwd=tmp_path)
    assert done.returncode == 0, _out(done)
    out = _out(done)
    assert "SUCCESS: 1 rule files found" in out
    assert f"Checking {ALERTS}" in out and f"SUCCESS: {len(ALERT_NAMES)} rules found" in out
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"] == [ALERTS.name]
    # NoModelLoaded names the scrape job: the two must agree.
    [job] = config["scrape_configs"]
    assert f'job="{job["job_name"]}"' in rules_by_alert()["NoModelLoaded"]["expr"]


def test_promtool_rule_tests_pass() -> None:
    done = run_promtool("test", "rules", ALERTS_TEST)
    assert done.returncode == 0, _out(done)
    assert "SUCCESS" in _out(done)


def test_every_rule_is_tested_firing_and_silent() -> None:
    suite = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    assert suite["rule_files"] == [ALERTS.name]
    fires, silent = set(), set()
    for case in suite["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    assert fires == ALERT_NAMES, f"never seen firing: {sorted(ALERT_NAMES - fires)}"
    assert silent == ALERT_NAMES, f"never seen silent: {sorted(ALERT_NAMES - silent)}"


def test_every_rule_has_a_for_a_severity_and_names_what_fired() -> None:
    for name, rule in rules_by_alert().items():
        assert re.fullmatch(r"[1-9][0-9]*[smh]", str(rule.get("for", ""))), f"{name}: for"
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
    rules = rules_by_alert()
    assert "$labels.feature" in rules["FeatureDrift"]["annotations"]["summary"]
    for name in ("HighErrorRate", "HighLatencyP99"):
        assert "$labels.route" in rules[name]["annotations"]["summary"], name
        assert 'route="/api/v1/predict"' in rules[name]["expr"], name
    assert rules["ShadowDisagreement"]["labels"]["severity"] == "info"


def test_rule_tests_fail_when_a_rule_is_broken(tmp_path: Path) -> None:
    """The silent cases bite: a loosened threshold, a dropped gate or a shorter `for` each
    make the rule's own cases in alerts.test.yml fail (all mutants in one promtool run)."""
    text = ALERTS.read_text(encoding="utf-8")
    psi = re.search(r"feature_drift_psi > ([0-9.]+)", text)
    assert psi, "FeatureDrift compares feature_drift_psi with no threshold"
    mutants = {
        "psi-threshold": ("FeatureDrift", psi.group(0), f"feature_drift_psi > {float(psi[1]) / 2}"),
        "window-gate": (
            "FeatureDrift",
            "ignoring(feature) drift_window_instances >= 500",
            "ignoring(feature) drift_window_instances >= 0",
        ),
        "error-share": ("HighErrorRate", "  > 0.01\n", "  > 0.001\n"),
        "latency": ("HighLatencyP99", "  > 0.05\n", "  > 0.005\n"),
        "latency-4xx": ("HighLatencyP99", 'status!~"4.."', 'status=~".*"'),
        "for": ("NoModelLoaded", "for: 2m", "for: 0m"),
        "shadow-gate": ("ShadowDisagreement", "shadow_loaded == 1", "shadow_loaded >= 0"),
        "log-dropped": (
            "FeatureLogFailing",
            "feature_log_errors_total",
            "feature_log_dropped_total",
        ),
    }
    suite = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    files = []
    for name, (alert, old, new) in mutants.items():
        assert text.count(old) == 1, f"{name}: {old!r} is not once in alerts.yml"
        directory = tmp_path / name
        directory.mkdir()
        (directory / ALERTS.name).write_text(text.replace(old, new), encoding="utf-8")
        # Only the mutated rule's cases: the others would pass and cost time.
        cases = [
            case
            for case in suite["tests"]
            if any(check["alertname"] == alert for check in case["alert_rule_test"])
        ]
        (directory / ALERTS_TEST.name).write_text(
            yaml.safe_dump({**suite, "tests": cases}, sort_keys=False), encoding="utf-8"
        )
        files.append(directory / ALERTS_TEST.name)
    # One stream, so each file's verdict follows its name (promtool writes FAILED to stderr).
    done = subprocess.run(
        [promtool(), "test", "rules", *map(str, files)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
    verdicts = dict(re.findall(r"Unit Testing:\s+(\S+)\s+(SUCCESS|FAILED)", done.stdout))
    assert set(verdicts) == {str(f) for f in files}, done.stdout
    survived = sorted(Path(f).parent.name for f, v in verdicts.items() if v == "SUCCESS")
    assert survived == [], f"mutants the rule tests did not catch: {survived}"
    assert done.returncode != 0


# --- the drift thresholds are params.yaml's ----------------------------------------------------


def test_drift_rules_state_params_monitor_thresholds() -> None:
    monitor = _monitor()
    psi, window = monitor["psi_threshold"], monitor["min_instances"]
    rules = rules_by_alert()
    for name, gauge in (
        ("FeatureDrift", "feature_drift_psi"),
        ("PredictionDrift", "prediction_drift_psi"),
    ):
        expr = " ".join(rules[name]["expr"].split())
        found = re.search(rf"{gauge} > ([0-9.]+)", expr)
        assert found and float(found.group(1)) == float(psi), f"{name}: {expr} (params: {psi})"
        found = re.search(r"drift_window_instances >= ([0-9]+)", expr)
        assert found and int(found.group(1)) == int(window), f"{name}: {expr} (params: {window})"
        assert f"(threshold {psi})" in rules[name]["annotations"]["description"], name


def _drift_series(name: str, psi: float, window: int) -> dict[str, str]:
    if name == "FeatureDrift":
        gauge = f'feature_drift_psi{{{TARGET},feature="median_income"}}'
    else:
        gauge = f"prediction_drift_psi{{{TARGET}}}"
    return {gauge: f"{psi}x20", f"drift_window_instances{{{TARGET}}}": f"{window}x20"}


@pytest.mark.parametrize("name", ["FeatureDrift", "PredictionDrift"])
def test_drift_rules_fire_exactly_at_params_monitor_thresholds(name: str, tmp_path: Path) -> None:
    """Just above psi_threshold on a window of min_instances fires; the threshold itself, or
    one instance fewer, does not (through run_rule_test, the replay's seam)."""
    monitor = _monitor()
    psi, window = float(monitor["psi_threshold"]), int(monitor["min_instances"])
    labels = {"severity": "warning", "job": "housing-api", "instance": "api:8000"}
    if name == "FeatureDrift":
        labels["feature"] = "median_income"
    cases = [
        (psi + 0.001, window, [{"exp_labels": labels}]),
        (psi, window, []),
        (psi + 0.5, window - 1, []),
    ]
    for value, size, expected in cases:
        done = run_rule_test(tmp_path, _drift_series(name, value, size), name, "15m", expected)
        assert done.returncode == 0, f"PSI {value}, window {size}:\n{_out(done)}"


def test_run_rule_test_reports_a_wrong_expectation(tmp_path: Path) -> None:
    """The helper does fail: recorded values (a list) that fire, expected silent."""
    series = {
        f"model_loaded{{{TARGET}}}": [0.0] * 5,
    }
    done = run_rule_test(tmp_path, series, "NoModelLoaded", "4m", [])
    assert done.returncode != 0
    assert "NoModelLoaded" in _out(done) and "got:" in _out(done)
    labels = {"severity": "critical", "job": "housing-api", "instance": "api:8000"}
    done = run_rule_test(tmp_path, series, "NoModelLoaded", "4m", [{"exp_labels": labels}])
    assert done.returncode == 0, _out(done)
