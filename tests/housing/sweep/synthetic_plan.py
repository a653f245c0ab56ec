"""A cheap plan for worker tests (``--plan synthetic_plan:plan``): a quadratic over a small
discrete space, reported over a few steps with a sleep in each, so trials take a known time
and a worker can be killed in the middle of one."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from housing.sweep import parse_sweep_config
from housing.sweep.inputs import EXECUTION_KEYS, StudyPlan

# 4 x 2 = 8 points: more trials than that must repeat some (duplicates are counted).
SPACE = {"x": {"distribution": "int_uniform", "min": 0, "max": 3}, "kind": {"values": ["a", "b"]}}
STEPS = 4


def plan(p: Mapping[str, Any]) -> StudyPlan:
    spec = parse_sweep_config({**p["config"], "parameters": SPACE})
    step_s = float(p.get("step_s", 0.1))

    def objective(params: dict[str, Any], reporter: Any) -> float:
        value = (params["x"] - 2) ** 2 + (0.5 if params["kind"] == "b" else 0.0)
        for step in range(1, STEPS + 1):
            time.sleep(step_s)
            reporter.report(step, value + 1.0 / step)
        return float(value)

    payload = {k: v for k, v in p.items() if k not in EXECUTION_KEYS}
    text = json.dumps(payload, sort_keys=True) + Path(__file__).read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return StudyPlan(spec=spec, objective=objective, seed=int(p["seed"]), digest=digest, label="x")
