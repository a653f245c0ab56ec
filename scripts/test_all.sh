#!/usr/bin/env bash
# Every test tier (`pytest -m ""`) in one pytest run with one xdist worker per core
# (HOUSING_TEST_WORKERS to change it). Work units (a file, or a folder whose files share costly
# fixtures) start costliest first and each worker takes the next when it runs out
# (tests/scheduling.py), so both cores stay busy to the end. Coverage from every worker goes
# into one report and coverage.xml; each unit's seconds into test-output/durations.json.
# Usage: scripts/test_all.sh [extra pytest args]   (the Makefile's `test` target calls it)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# One worker more than the cores this process may run on (nproc would answer
# OMP_NUM_THREADS, which is 1 here): a worker waiting on a server, podman or a retry leaves
# its core to the spare one (docs/testing.md has the measurement).
workers=${HOUSING_TEST_WORKERS:-$("$PY" -c 'import os; print(len(os.sched_getaffinity(0)) + 1)')}
rm -f .coverage .coverage.*
started=$SECONDS
"$PY" -m pytest -m "" -n "$workers" --dist loadfile --durations=25 \
  --cov --cov-report=term:skip-covered --cov-report=xml \
  --unit-durations=test-output/durations.json "$@"
status=$?
wall=$((SECONDS - started))
# Seconds per tier, summed over its units (worker time: the tiers ran side by side).
"$PY" - "$wall" <<'PY'
import json, sys
from collections import Counter
from pathlib import Path

path = Path("test-output/durations.json")
units = json.loads(path.read_text()) if path.is_file() else {}
tiers = Counter()
for unit, seconds in units.items():
    tiers["/".join(unit.split("/")[:2])] += seconds
print(f"tests: {sys.argv[1]} s wall on {sum(tiers.values()):.0f} s of worker time")
for tier, seconds in tiers.most_common():
    print(f"  {tier:<20} {seconds:7.0f} s")
PY
# On GitHub, the coverage table goes to the job summary too.
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f .coverage ]; then
  "$PY" -m coverage report --format=markdown >> "$GITHUB_STEP_SUMMARY" || status=1
fi
exit "$status"
