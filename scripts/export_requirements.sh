#!/usr/bin/env bash
# Export the pinned requirements of each container image from uv.lock, and the pipeline's
# output-affecting libraries (requirements/pipeline-libraries.txt, a dvc.yaml dep).
# Usage: scripts/export_requirements.sh [OUTPUT_ROOT]   (default: the repository root)
# tests/ci/test_requirements.py runs this into a temporary directory and compares,
# so the committed files cannot drift from uv.lock.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo}"
cd "$repo"

# Exported to stdout (not -o) so the uv header is the same whatever OUTPUT_ROOT is.
export_extra() {
    local target="$1"
    shift
    mkdir -p "$(dirname "$out/$target")"
    uv export --frozen --no-hashes --no-dev --no-emit-project "$@" >"$out/$target.tmp"
    mv "$out/$target.tmp" "$out/$target"
}

# API image: the serve extra, numpy and LightGBM (whose library it loads with ctypes). The
# model-fitting stack is pruned: the API imports none of it (the Dockerfile installs these
# pins with --no-deps, so LightGBM's declared scipy stays out). W&B's prediction log only
# with --build-arg WITH_WANDB=1, from the second file.
api_prune=(--prune scikit-learn --prune pandas --prune pyarrow --prune skops --prune scipy
    --prune narwhals)
export_extra serve/requirements.txt --extra serve "${api_prune[@]}"
export_extra serve/requirements-wandb.txt --extra serve --extra serve-wandb "${api_prune[@]}"
# Streamlit image: it talks to the API over HTTP only, so the model-fitting stack is pruned.
export_extra app/requirements.txt --extra app --prune scikit-learn --prune lightgbm --prune skops \
    --prune pykdtree
# Pipeline image: model stack + pipeline extra (dvc[gs], mlflow, optuna, wandb).
export_extra requirements/pipeline.txt --extra pipeline
# The subset of the pipeline's pins that can change its outputs: a dvc.yaml dep of the stages
# those libraries compute (the list and its reasons: scripts/pipeline_libraries.py).
python3 scripts/pipeline_libraries.py "$out/requirements/pipeline.txt" \
    "$out/requirements/pipeline-libraries.txt"
