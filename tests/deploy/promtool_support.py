"""promtool (Debian's `prometheus` package, `make system-deps`) for the alert rules' tests.

`run_rule_test` is the seam for feeding recorded values to the real rules: it writes a
one-case `promtool test rules` file against deploy/prometheus/alerts.yml and runs it, e.g.
with the drift gauges recorded during a shifted replay:

    done = run_rule_test(
        tmp_path,
        {
            'feature_drift_psi{job="housing-api",instance="api:8000",feature="median_income"}':
                [0.02, 0.4, 0.61, 0.63, ...],  # one value a minute, as scraped
            'drift_window_instances{job="housing-api",instance="api:8000"}': "4128x30",
        },
        "FeatureDrift",
        "25m",
        [{"exp_labels": {"severity": "warning", "job": "housing-api",
                         "instance": "api:8000", "feature": "median_income"}}],
    )
    assert done.returncode == 0, done.stdout + done.stderr
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts.test.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMTOOL_TIMEOUT_S = 60.0

_EXPECTED_KEYS = frozenset({"exp_labels", "exp_annotations"})


def promtool() -> str:
    """Path of promtool; fails with the way to install it."""
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None
    )
    assert found, "promtool not found: `make system-deps` installs Debian's prometheus package"
    return found


def run_promtool(*args: str | Path, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS`` with its output captured (never raises on a failed check)."""
    return subprocess.run(
        [promtool(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )


def rule_groups(path: Path = ALERTS) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]


def rules_by_alert(path: Path = ALERTS) -> dict[str, dict[str, Any]]:
    """Every alerting rule of ``path`` by its alert name."""
    return {r["alert"]: r for g in rule_groups(path) for r in g["rules"] if "alert" in r}


def _without_annotations(rules: Path, out: Path) -> Path:
    """A copy of ``rules`` whose rules carry no annotations (expr, for, labels unchanged)."""
    groups = rule_groups(rules)
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    out.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    return out


def _values(values: str | Sequence[float]) -> str:
    if isinstance(values, str):
        return values
    return " ".join(repr(float(v)) for v in values)


def run_rule_test(
    tmp_path: Path,
    series: Mapping[str, str | Sequence[float]],
    alertname: str,
    eval_time: str,
    expected: Sequence[Mapping[str, Mapping[str, str]]],
    *,
    interval: str = "1m",
    rules: Path = ALERTS,
) -> subprocess.CompletedProcess[str]:
    """Run one `promtool test rules` case on the real rules; returncode 0 when it passes.

    ``series`` maps a series selector (``'metric{label="v",...}'``) to its samples, one per
    ``interval`` from time 0: promtool's notation (``"0.35x30"``, ``"0+10x60"``, ``"_"`` for
    a missing sample) or a sequence of numbers (recorded values). ``expected`` lists the
    alerts firing for ``alertname`` at ``eval_time`` (``"25m"``), each in promtool's shape
    ``{"exp_labels": {...}, "exp_annotations": {...}}``; ``[]`` asserts it is silent.
    ``exp_labels`` holds every label but ``alertname`` (severity and the series' labels the
    rule keeps). When no entry gives ``exp_annotations``, the case runs on a copy of the rules
    without annotations (expressions, ``for`` and labels as in the real file), so labels alone
    are compared; otherwise annotations must match exactly, rendered values included.
    The test file and any copy are written to ``tmp_path``; on a failure promtool's output
    (stdout and stderr) shows what it expected and what it got.
    """
    for entry in expected:
        unknown = set(entry) - _EXPECTED_KEYS
        assert not unknown, f"expected alert keys are {sorted(_EXPECTED_KEYS)}, not {unknown}"
    with_annotations = any("exp_annotations" in entry for entry in expected)
    rule_file = rules.resolve()
    if not with_annotations:
        rule_file = _without_annotations(rule_file, tmp_path / f"{rules.stem}.no-annotations.yml")
    case = {
        "rule_files": [str(rule_file)],
        "evaluation_interval": interval,
        "tests": [
            {
                "name": f"{alertname} at {eval_time}",
                "interval": interval,
                "input_series": [
                    {"series": name, "values": _values(values)} for name, values in series.items()
                ],
                "alert_rule_test": [
                    {
                        "eval_time": eval_time,
                        "alertname": alertname,
                        "exp_alerts": [dict(entry) for entry in expected],
                    }
                ],
            }
        ],
    }
    test_file = tmp_path / f"{alertname}.{eval_time}.test.yml"
    test_file.write_text(yaml.safe_dump(case, sort_keys=False), encoding="utf-8")
    return run_promtool("test", "rules", test_file, cwd=tmp_path)
