"""scripts/ci_summary.py as the workflow's summary job runs it: a results table in the job
summary, and a non-zero exit when a job failed or was cancelled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ci_summary.py"


def _run(results: object, summary: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    env.update(RESULTS=json.dumps(results), EVENT="push", REF="main")
    if summary is not None:
        env["GITHUB_STEP_SUMMARY"] = str(summary)
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, check=False
    )


def test_all_passing_or_skipped_is_green_and_tabled(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    done = _run({"lint": {"result": "success"}, "report": {"result": "skipped"}}, summary)
    assert done.returncode == 0, done.stderr
    text = summary.read_text()
    assert text.startswith("## CI summary (push on main)")
    assert "| lint | ✅ success |" in text and "| report | ⏭️ skipped |" in text


@pytest.mark.parametrize("result", ["failure", "cancelled"])
def test_a_failed_or_cancelled_job_fails_the_summary(result: str) -> None:
    done = _run({"lint": {"result": "success"}, "test": {"result": result}})
    assert done.returncode == 1
    assert done.stderr.strip() == "error: failed or cancelled: test"
    assert "| test |" in done.stdout and result in done.stdout


def test_results_that_are_not_the_needs_context_are_refused_in_one_line() -> None:
    done = _run(["not", "a", "mapping"])
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: RESULTS must be the JSON of the needs context")
