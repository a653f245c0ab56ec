#!/usr/bin/env bash
# The repository's own consistency, checked before any CI job runs (`make check`; CI's
# setup job): each check prints one line, the first failure stops with a non-zero exit.
#   1. uv.lock matches pyproject.toml (uv lock --check)
#   2. the files the workflow, images and docs rely on exist
#   3. the image requirements exported from uv.lock are the committed ones
#   4. dvc.yaml parses (dvc stage list); params.yaml matches its schema (housing-params check)
#   5. the workflows pass actionlint and GitHub's workflow schema; the compose file its schema
#   6. every Dockerfile passes hadolint
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
UV=${UV:-uv}
command -v "$UV" >/dev/null 2>&1 || UV=.tools/bin/uv
step() { echo "== $*"; }

step "uv.lock matches pyproject.toml"
"$UV" lock --check --quiet

step "required files"
missing=0
for path in pyproject.toml uv.lock dvc.yaml params.yaml params.schema.json .dvc/config src/housing \
            stages serve app tests Dockerfile serve/Dockerfile app/Dockerfile docker-compose.yaml \
            .env.example docker/mlflow/Dockerfile docker/postgres/Dockerfile keys/team.pub \
            scripts/pr_report.py scripts/registry_users.py scripts/release.sh; do
  if [ ! -e "$path" ]; then echo "error: missing $path" >&2; missing=1; fi
done
[ "$missing" = 0 ]

step "image requirements match uv.lock"
scripts/export_requirements.sh >/dev/null
git diff --exit-code -- serve/requirements.txt app/requirements.txt requirements/pipeline.txt

step "dvc.yaml parses; params.yaml matches its schema"
"$BIN/dvc" stage list >/dev/null
"$BIN/housing-params" check

step "workflows (actionlint, GitHub's schema) and the compose file (compose-spec)"
"$BIN/actionlint" -no-color
"$BIN/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$BIN/check-jsonschema" --schemafile tests/ci/schemas/compose-spec.json docker-compose.yaml

step "Dockerfiles (hadolint)"
"$BIN/hadolint" --failure-threshold info Dockerfile serve/Dockerfile app/Dockerfile \
  docker/mlflow/Dockerfile docker/postgres/Dockerfile
echo "repository checks passed"
