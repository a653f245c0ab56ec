# The commands the README shows. Every target installs what it needs first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
UV_VERSION := 0.13.9
BIN := .venv/bin
# Stages run `python -m stages.<name>`: the project's interpreter must come first on PATH.
# .tools/path holds only a link to the bootstrapped uv (below), so tests and scripts find it.
export PATH := $(CURDIR)/.venv/bin:$(CURDIR)/.tools/path:$(PATH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Two shared cores: one thread per native pool for the API, the app, the tests and the
# benchmarks (measured 10x faster than oversubscribing). Not for `pipeline`: the stages pin
# their own pools (stages/__init__.py), so `make pipeline` computes what a `dvc repro` typed
# in any shell does, and the full-pipeline test proves it without these variables.
ONE_THREAD_PER_POOL := test test-fast serve app up bench images images-check
$(ONE_THREAD_PER_POOL): export OMP_NUM_THREADS ?= 1
$(ONE_THREAD_PER_POOL): export OPENBLAS_NUM_THREADS ?= 1
$(ONE_THREAD_PER_POOL): export MKL_NUM_THREADS ?= 1
export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT ?= false

# The Streamlit page tests start HTTP servers (a stub API, the real one): `make test` runs them.
FAST_IGNORE := --ignore=tests/app/test_app_page.py --ignore=tests/app/test_app_batch_page.py

.PHONY: install system-deps pipeline test test-fast check dvc-push report release lint format serve monitor publish app up bench clean images images-check

# uv: the one on PATH when it is the pinned version, else a project-local copy in .tools/,
# bootstrapped from PyPI into a venv of $(PYTHON). Nothing is installed into the system
# interpreter (PEP 668: Debian's and Ubuntu's python3 refuse `pip install` outright).
TOOLS := .tools
UV := $(shell command -v uv >/dev/null 2>&1 && uv --version 2>/dev/null | grep -qF "$(UV_VERSION)" \
        && echo uv || echo $(TOOLS)/bin/uv)

$(TOOLS)/bin/uv:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "error: $(PYTHON) cannot create a virtualenv; install python3-venv (Debian/Ubuntu)" >&2; \
	  exit 1; }
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(TOOLS)/path/uv: $(TOOLS)/bin/uv
	mkdir -p $(TOOLS)/path && ln -sf ../bin/uv $@

## install: Python 3.11 virtualenv with every pinned dependency (uv.lock) + the project, and
## the development signing key pair in .keys/ (git-ignored; kept if it exists): promotions
## sign with it unless HOUSING_SIGNING_KEY(_FILE) is set, from make or from a dvc typed by hand
install: $(if $(filter uv,$(UV)),,$(TOOLS)/path/uv)
	$(UV) sync --frozen --all-extras --python 3.11
	@[ -f $(KEYS)/signing-key.pem ] || $(BIN)/housing-sign keygen --out $(KEYS)

## system-deps: Chromium for the browser test, wrk for the load benchmark, PostgreSQL for the
## registry tests, Prometheus for promtool (the alert rules' checks and tests) (Debian
## packages; each installed only when missing)
system-deps:
	@pkgs=""; \
	if ! command -v chromium >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1; then \
	  pkgs="chromium chromium-driver wrk"; \
	fi; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then pkgs="$$pkgs postgresql"; fi; \
	if ! command -v promtool >/dev/null 2>&1; then pkgs="$$pkgs prometheus"; fi; \
	if [ -n "$$pkgs" ]; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    $$pkgs >/dev/null; \
	fi

# The register stage and housing-registry find the promotion key themselves: the environment
# (HOUSING_SIGNING_KEY/_FILE), else the development key $(KEYS)/signing-key.pem that `install`
# creates (docs/signing.md). Unless HOUSING_VERIFY_KEYS/_FILES say otherwise, `serve` and `up`
# trust the team's committed public key $(TEAM_KEY) (CI signs and publishes with its private
# half on main) and this clone's development key.
KEYS := .keys
TEAM_KEY := keys/team.pub
TRUST_KEYS := if [ -z "$${HOUSING_VERIFY_KEYS:-}$${HOUSING_VERIFY_KEY_FILES:-}" ]; then \
	  files="$(CURDIR)/$(TEAM_KEY)"; \
	  if [ -f $(KEYS)/signing-key.pub ]; then files="$$files,$(CURDIR)/$(KEYS)/signing-key.pub"; fi; \
	  export HOUSING_VERIFY_KEY_FILES="$$files"; fi; \
	  export REPLAY_STATE_DIR="$${REPLAY_STATE_DIR-$(CURDIR)/.replay-state}"

REPRO_LOG := reports/repro.log

## pipeline: install, check params.yaml against its schema (housing-params check: one line per
## bad key, before any stage), then run the seven DVC stages (only what changed re-runs); the
## register stage signs and promotes the champion and exports it to champion/. Ends with a
## summary of at most 15 lines (also in reports/summary.md), after a failed stage too; the
## whole output of dvc repro is in reports/repro.log (both git-ignored). REPRO_ARGS=--pull
## fetches what the remote has instead of recomputing it (CI)
pipeline: install
	$(BIN)/housing-params check
	@mkdir -p reports; status=0; \
	  echo "+ $(BIN)/dvc repro $(REPRO_ARGS) 2>&1 | tee $(REPRO_LOG)"; \
	  $(BIN)/dvc repro $(REPRO_ARGS) 2>&1 | tee $(REPRO_LOG) || status=$$?; \
	  echo; $(BIN)/python -m housing.summary --repro-log $(REPRO_LOG) --out reports/summary.md; \
	  if [ -n "$${GITHUB_STEP_SUMMARY:-}" ]; then cat reports/summary.md >> "$$GITHUB_STEP_SUMMARY"; fi; \
	  exit $$status

## test: install, lint, then every test tier (unit, data, model, slow, end-to-end, containers)
## on every core (scripts/test_all.sh; tiers and times: docs/testing.md)
test: install system-deps lint
	scripts/test_all.sh $(TEST_ARGS)

## check: the repository's own consistency, before any job runs (scripts/check_repo.sh):
## uv.lock, required files, image requirements, dvc.yaml, params.yaml, workflows, compose
## file, Dockerfiles
check: install
	BIN=$(BIN) scripts/check_repo.sh

## dvc-push: push every output and the run cache to the DVC remote (CI on main)
dvc-push: install
	$(BIN)/dvc push --run-cache

## report: the pull-request report of the working tree against BASE (default main) in
## report.md (scripts/pr_report.py), and in the job summary on GitHub
BASE ?= main
report: install
	$(BIN)/python scripts/pr_report.py --base $(BASE) --title "Pipeline report" -o report.md
	@if [ -n "$${GITHUB_STEP_SUMMARY:-}" ]; then cat report.md >> "$$GITHUB_STEP_SUMMARY"; fi

## release: register models/ into the registry of MLFLOW_TRACKING_URI (gates decide; signed),
## export its champion and publish it (scripts/release.sh; CI on main, RELEASE_ARGS=--push)
release: install
	BIN=$(BIN) scripts/release.sh $(RELEASE_ARGS)

## test-fast: the unit tiers (no servers, no DVC runs, no browser) on every core, in under a
## minute: the edit-test loop
test-fast: install
	$(BIN)/python -m pytest -n auto --dist loadfile -p no:cacheprovider $(FAST_IGNORE)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## serve: the API on 127.0.0.1:8000, serving the local registry's signed champion, else the
## champion/ directory (`dvc pull` brings the team's published one); verified with the team
## key and the development key (or HOUSING_VERIFY_KEYS/_FILES); its replay marks in
## .replay-state/ (REPLAY_STATE_DIR) refuse an older champion after a restart; its feature
## log in monitoring/features/ (FEATURE_LOG_DIR; empty turns it off), what `monitor` reads
serve: install
	@$(TRUST_KEYS); export FEATURE_LOG_DIR="$${FEATURE_LOG_DIR-monitoring/features}"; set -x; \
	MLFLOW_TRACKING_URI=sqlite:///mlflow.db exec $(BIN)/python -m serve

## monitor: the served traffic (monitoring/features/) against the champion's training data:
## monitoring/report.html and summary.json; exit 1 on an alert (docs/monitoring.md).
## MONITOR_ARGS: more options, e.g. --since 24h --labels truth.csv --api http://127.0.0.1:8000
monitor: install
	$(BIN)/housing-monitor $(MONITOR_ARGS)

## publish: the release step for clones (CI runs it on main): verify champion/ with the team
## key keys/team.pub, `dvc add` it and push it to the DVC remote; committed, champion.dvc lets
## a clone's `dvc pull` bring it (PUBLISH_ARGS=--commit commits it)
publish: install
	BIN=$(BIN) scripts/publish_champion.sh $(PUBLISH_ARGS)

## app: the Streamlit app on 127.0.0.1:8501 (needs the API)
app: install
	$(BIN)/python -m app

## up: API and app together (Ctrl-C stops both)
up: install
	@$(TRUST_KEYS); set -x; $(BIN)/python scripts/run_local.py

## bench: pipeline and API benchmarks (figures quoted in the README)
bench: install system-deps
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/serve_load.py

## images: build the pipeline, API and app images with podman (installed from Debian if missing)
images: install
	$(BIN)/python -m scripts.images build --json test-output/images.json

## images-check: build the images, then run them (API, app, pipeline) and list their files
images-check: install
	$(BIN)/python -m pytest -m containers tests/containers

clean:
	rm -rf .tools .pytest_cache .ruff_cache .coverage coverage.xml htmlcov test-output bench/results
