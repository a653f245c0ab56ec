# Training pipeline image: `dvc repro` with the `pipeline` extra (dvc[gs], mlflow, optuna, wandb).
#   docker build -t housing-pipeline .
# Run it on a checkout (DVC needs the Git history to compare stages):
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD":/workspace housing-pipeline
# Without a mount it runs on the code baked into the image (no Git; see docs/cicd.md).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependency layer first: it only changes when uv.lock (and so this export) changes.
COPY requirements/pipeline.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src/ ./src/
RUN pip install --no-cache-dir --no-deps .

FROM python:3.11-slim AS runtime
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
WORKDIR /workspace
# Code layers last: the pipeline definition, stage code and DVC project config.
COPY --chown=pipeline:pipeline dvc.yaml params.yaml ./
COPY --chown=pipeline:pipeline .dvc/config .dvc/.gitignore ./.dvc/
COPY --chown=pipeline:pipeline stages/ ./stages/
COPY --chown=pipeline:pipeline src/ ./src/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    HOME=/home/pipeline
USER 10001:10001
# The baked-in copy has no .git: tell DVC so (a mounted checkout brings its own .dvc/config.local).
RUN dvc config --local core.no_scm true
CMD ["dvc", "repro"]
