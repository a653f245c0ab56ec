# Training pipeline image: `dvc repro` with the `pipeline` extra (dvc[gs], mlflow, optuna, wandb).
#   docker build -t housing-pipeline .
# Run it on a checkout (DVC needs the Git history to compare stages):
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD":/workspace housing-pipeline
# Without a mount it runs on the code baked into the image (no Git; see docs/cicd.md).
# BASE_IMAGE and CA_BUNDLE: as in serve/Dockerfile (a local bookworm base where
# python:3.11-slim cannot be pulled; the host's CA bundle mounted for the build only).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ARG UV_VERSION=0.13.9
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON=/opt/venv/bin/python
RUN python -m venv /opt/uv \
    && PIP_CERT="$CA_BUNDLE" /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}" \
    && python -m venv --without-pip /opt/venv
# Dependency layer first: it only changes when uv.lock (and so this export) changes.
# The uv cache is a build cache mount (shared by the three images), never an image layer.
COPY requirements/pipeline.txt /tmp/requirements.txt
RUN --mount=type=cache,id=housing-uv,target=/root/.cache/uv \
    SSL_CERT_FILE="$CA_BUNDLE" /opt/uv/bin/uv pip install -r /tmp/requirements.txt
# The housing package (no deps) into its own prefix: a code change rebuilds a small layer.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src/ ./src/
RUN --mount=type=cache,id=housing-uv,target=/root/.cache/uv \
    SSL_CERT_FILE="$CA_BUNDLE" /opt/uv/bin/uv pip install --no-deps --prefix /opt/project .

FROM ${BASE_IMAGE} AS runtime
# git: DVC reads the repository history; libgomp1: LightGBM's OpenMP runtime.
# safe.directory: a mounted checkout is usually owned by another uid than the container user.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*' \
    && groupadd --system --gid 10001 pipeline \
    && useradd --create-home --uid 10001 --gid pipeline --shell /bin/bash pipeline
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/project /opt/venv
WORKDIR /workspace
# Code layers last: the pipeline definition, stage code and DVC project config.
COPY --chown=pipeline:pipeline dvc.yaml params.yaml ./
COPY --chown=pipeline:pipeline .dvc/config .dvc/.gitignore ./.dvc/
COPY --chown=pipeline:pipeline stages/ ./stages/
COPY --chown=pipeline:pipeline src/ ./src/
COPY --chown=pipeline:pipeline requirements/pipeline-libraries.txt ./requirements/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    HOME=/home/pipeline
USER 10001:10001
# The baked-in copy has no .git: tell DVC so (a mounted checkout brings its own .dvc/config.local).
RUN dvc config --local core.no_scm true
# A batch job, not a service: the probe only proves the environment imports and DVC runs.
HEALTHCHECK --interval=60s --timeout=30s --start-period=10s --retries=3 \
    CMD ["dvc", "version", "-q"]
CMD ["dvc", "repro"]
