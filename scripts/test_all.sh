#!/usr/bin/env bash
# Every test tier (`pytest -m ""`) in two pytest processes side by side, one per core: the
# pipeline and remote tiers (whole DVC pipelines, most of the CPU time) and everything else.
# Run serially they took about 90 minutes on this project's 2-core machine; both groups also
# passed side by side there. Coverage from both is combined into one report and coverage.xml.
# Usage: scripts/test_all.sh [extra pytest args]   (the Makefile's `test` target calls it)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SLOW_TIERS=(tests/pipeline tests/remote)
log=$(mktemp -t housing-tests-pipeline.XXXXXX.log)
rm -f .coverage .coverage.*

COVERAGE_FILE=.coverage.pipeline "$PY" -m pytest -m "" -p no:cacheprovider --durations=20 \
  --cov --cov-report= "$@" "${SLOW_TIERS[@]}" >"$log" 2>&1 &
slow=$!
COVERAGE_FILE=.coverage.rest "$PY" -m pytest -m "" --durations=40 --cov --cov-report= \
  "${SLOW_TIERS[@]/#/--ignore=}" "$@"
rest=$?
wait "$slow"
pipeline=$?
echo "==================== tests/pipeline and tests/remote (ran side by side) ===================="
cat "$log"
rm -f "$log"
"$PY" -m coverage combine .coverage.pipeline .coverage.rest >/dev/null
"$PY" -m coverage report --skip-covered
"$PY" -m coverage xml -q
echo "exit status: pipeline and remote tiers $pipeline, the rest $rest"
exit $(( pipeline != 0 || rest != 0 ))
