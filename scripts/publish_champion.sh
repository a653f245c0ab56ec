#!/usr/bin/env bash
# Publish the signed champion to the DVC remote, where a clone's `dvc pull` finds it.
#
# A deliberate release step, never a pipeline stage: the champion's signature and promotion
# record are not reproducible outputs. CI runs it on main after the pipeline signed the
# champion with the team's key (`make publish PUBLISH_ARGS=--commit`); anyone holding that
# key can run it too. Steps:
#   1. champion/ must verify with the team's committed public key, keys/team.pub: a
#      development key's champion is never published as the team's;
#   2. `dvc add champion` records it in champion.dvc, `dvc push champion.dvc` uploads it;
#   3. with --commit, champion.dvc is committed (its message names the version).
# Usage: scripts/publish_champion.sh [--commit]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}  # the project's virtualenv (make install)
TEAM_KEY=keys/team.pub
commit=0
for arg in "$@"; do
  case "$arg" in
    --commit) commit=1 ;;
    *) echo "error: unknown argument $arg (usage: $0 [--commit])" >&2; exit 2 ;;
  esac
done
if [ ! -d champion ]; then
  echo "error: no champion/ to publish: run make pipeline first" >&2
  exit 2
fi
if ! verified="$("$BIN/housing-sign" verify champion --key "$TEAM_KEY" --expect-alias champion)"; then
  echo "error: champion/ is not signed by the team key $TEAM_KEY: not published" >&2
  exit 2
fi
echo "$verified"
"$BIN/dvc" add --quiet champion
"$BIN/dvc" push --quiet champion.dvc
version="$("$BIN/python" -c 'import json; r = json.load(open("champion/promotion.json")); print("v%s (promotion #%s)" % (r["version"], r["sequence"]))')"
echo "published the champion $version: commit champion.dvc, and a clone's dvc pull brings it"
if [ "$commit" = 1 ]; then
  git add champion.dvc .gitignore
  git commit --quiet -m "Publish the champion $version [skip ci]"
  git log --oneline -1
fi
