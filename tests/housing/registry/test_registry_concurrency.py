"""Concurrent promote and rollback from two processes against one SQLite registry."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from registry_support import three_versions

from housing.registry import MODEL_NAME, version_for_alias

pytestmark = pytest.mark.slow

ITERATIONS = 25
WORKER = textwrap.dedent(
    """
    import json, sys, time
    from housing.registry import RegistryError, promote, rollback

    role, uri, n, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    done, refused, i = 0, [], 0
    while time.time() < start_at:
        time.sleep(0.01)
    # n moves each (a refusal is retried), so the two really interleave however long a
    # signed promotion takes; the deadline only bounds a stuck run.
    deadline = time.time() + 240
    while done < n and time.time() < deadline:
        try:
            if role == "promote":
                promote(str(i % 3 + 1), f"promote {i}", tracking_uri=uri, who="p")
            else:
                rollback(f"rollback {i}", tracking_uri=uri, who="r")
            done += 1
        except RegistryError as exc:
            msg = str(exc)
            if "already the champion" in msg or "nothing to roll back to" in msg:
                refused.append(msg)
                time.sleep(0.05)
            else:
                raise
        i += 1
    print(json.dumps({"done": done, "refused": len(refused)}))
    """
)


def _events(uri: str):
    from mlflow import MlflowClient

    from housing.registry.history import events_from_tags

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return events_from_tags(client.get_registered_model(MODEL_NAME).tags)


def test_concurrent_promote_and_rollback_lose_no_event(tmp_path: Path):
    uri = three_versions(tmp_path)
    before = _events(uri)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    start_at = f"{time.time() + 8.0:.3f}"  # both import mlflow first, then start together
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), role, uri, str(ITERATIONS), start_at],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("promote", "rollback")
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    moves = sum(r["done"] for r in results)
    assert moves >= ITERATIONS  # most promotions succeed; rollbacks interleave

    events = _events(uri)
    assert len(events) == len(before) + moves  # no event lost
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # no gap, no duplicate
    for earlier, later in itertools.pairwise(events):
        assert later.previous == earlier.version  # each move saw the one before it
    assert version_for_alias(tracking_uri=uri).version == events[-1].version
    assert {e.who for e in events[len(before) :]} <= {"p", "r"}
    assert {e.action for e in events[len(before) :]} == {"manual", "rollback"}  # interleaved
