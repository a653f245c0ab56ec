#!/usr/bin/env bash
# Release the champion of this commit to a team's registry and to clones (`make release`;
# CI's release job on main). Steps:
#   1. `dvc pull register`: the bundle main's pipeline pushed (models/) and the test split;
#   2. `housing-registry register`: a new version in the registry of MLFLOW_TRACKING_URI;
#      the paired gate decides promotion, signed with HOUSING_SIGNING_KEY(_FILE);
#   3. `housing-registry export --out champion`: the registry's champion, verified;
#   4. scripts/publish_champion.sh --commit: checked against keys/team.pub, pushed to the
#      DVC remote, champion.dvc committed; with --push, the commit is pushed to origin.
# Fails in one line when the registry or the key is not set: a release never falls back to
# the local SQLite registry or to a development key.
# Usage: scripts/release.sh [--push]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
push=0
for arg in "$@"; do
  case "$arg" in
    --push) push=1 ;;
    *) echo "error: unknown argument $arg (usage: $0 [--push])" >&2; exit 2 ;;
  esac
done
if [ -z "${MLFLOW_TRACKING_URI:-}" ]; then
  echo "error: MLFLOW_TRACKING_URI is not set: a release registers into the team's registry" >&2
  exit 2
fi
if [ -z "${HOUSING_SIGNING_KEY:-}${HOUSING_SIGNING_KEY_FILE:-}" ]; then
  echo "error: HOUSING_SIGNING_KEY is not set: a release is signed with the team's key" >&2
  exit 2
fi
"$BIN/dvc" pull --quiet register
"$BIN/housing-registry" register
"$BIN/housing-registry" export --out champion
scripts/publish_champion.sh --commit
if [ "$push" = 1 ]; then
  git push origin HEAD
fi
