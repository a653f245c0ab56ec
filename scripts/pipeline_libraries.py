"""Write the pinned versions of the libraries that compute the pipeline's outputs.

Usage: ``python scripts/pipeline_libraries.py EXPORTED OUTPUT``, where EXPORTED is the
pipeline's ``uv export`` (requirements/pipeline.txt); scripts/export_requirements.sh runs it
and writes requirements/pipeline-libraries.txt. That file is a ``dvc.yaml`` dep of every
stage these libraries compute, so upgrading one of them re-runs exactly those stages, where
``dvc repro`` used to report "up to date" over a model another scikit-learn would not build.

The list is a decision, made here with its reasons; tests/ci/test_stage_deps.py keeps it
complete: every third-party distribution a stage's code imports, and every direct
dependency (in uv.lock) of a library listed in ``AFFECTS_OUTPUTS``, must be in one of the two
tables below. Upgrading a library in ``NO_EFFECT`` re-runs nothing.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# A version of any of these can change the bytes of a DVC output (a number, a chosen
# trial, a serialised model or a file's metadata).
AFFECTS_OUTPUTS: dict[str, str] = {
    "joblib": "scikit-learn runs its n_jobs loops (forest fits and predictions, CV) "
    "through it; the order in which workers' results are summed changes float bits",
    "lightgbm": "the booster: split finding, histogram binning, the trees",
    "narwhals": "scikit-learn (ColumnTransformer, input validation) and LightGBM index and "
    "convert pandas frames through it",
    "numpy": "every array operation; its wheel bundles OpenBLAS, whose kernels round "
    "differently from version to version (see stages/__init__.py)",
    "optuna": "the sweep's TPE sampler and Hyperband pruner decide which trials run "
    "and so the chosen parameters",
    "pandas": "frames, group-bys, CSV, JSON and parquet I/O",
    "pyarrow": "writes every parquet output; its version is in each file's metadata, "
    "so a new pyarrow changes the md5 of identical data",
    "pyyaml": "writes models/best_params.yaml (its float formatting) and reads params",
    "scikit-learn": "imputers, KMeans, CV splits, the estimators and their defaults",
    "scipy": "scikit-learn's linear algebra and sparse code, the iterative imputer; "
    "its wheel bundles its own OpenBLAS",
    "skops": "serialises models/model.skops (the file's bytes)",
    "threadpoolctl": "sets the native thread pools' sizes, and with them the order of "
    "floating-point reductions",
}

# Imported by a stage, or a direct dependency of a library above, yet unable to change an
# output: listing them would re-run stages for nothing.
NO_EFFECT: dict[str, str] = {
    "alembic": "optuna's database storage (sweep.storage): where trials are kept, not which",
    "cloudpickle": "joblib ships functions to worker processes with it; no numbers",
    "colorlog": "optuna's coloured logs",
    "cryptography": "signs and verifies the exported champion, which is not a DVC output",
    "filelock": "serialises writers of the MLflow registry",
    "gcsfs": "a transport of the download stage, whose output is pinned by its sha256",
    "mlflow": "the register stage logs and registers the model it computed; the ids it "
    "returns differ on every run whatever the version, and no output holds them",
    "mlflow-skinny": "part of mlflow (it installs the same top-level package)",
    "mlflow-tracing": "part of mlflow (it installs the same top-level package)",
    "model-signing": "signs the exported champion, which is not a DVC output",
    "packaging": "version-string parsing in skops and optuna",
    "prettytable": "skops's model-card tables; no card is written",
    "pydantic": "validates each stage's params.yaml section before it runs; the values it "
    "passes on are the file's own (an integer written where a float is expected becomes "
    "that float, by the schema, in every version)",
    "pydantic-core": "part of pydantic (its validators)",
    "pykdtree": "proposes neighbour candidates only: the (distance, row index) rule is "
    "applied to distances housing.serving.neighbors computes itself, and a query is "
    "answered only once the candidates provably hold every point up to the k-th distance",
    "python-dateutil": "pandas's date parsing; the data has no dates",
    "sqlalchemy": "optuna's database storage (sweep.storage): where trials are kept, not which",
    "tl2cgen": "writes the champion's compiled predictor (C) at promotion; the champion is "
    "not a DVC output, and the library is checked against LightGBM's prices before use",
    "tqdm": "progress bars on stderr",
    "treelite": "reads the booster's model text for tl2cgen at promotion; no DVC output",
    "typer": "command-line interfaces",
    "tzdata": "pandas's time zones; the data has no timestamps",
    "wandb": "tracking; with sweep.engine=wandb the trials come from W&B's service, "
    "whatever the client's version",
}

HEADER = """\
# The pinned libraries whose versions can change the pipeline's outputs (from uv.lock).
# Generated by scripts/export_requirements.sh; the list and the reason for each entry are in
# scripts/pipeline_libraries.py. A dvc.yaml dep of every stage they compute: an upgrade
# re-runs those stages.
"""

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==\S+")


def normalize(name: str) -> str:
    """PEP 503 form, as uv writes names (``PyYAML`` -> ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def select_pins(exported: str, names: set[str]) -> list[str]:
    """The ``name==version`` lines (markers kept) of ``names`` in a ``uv export``, sorted.

    Raises ``ValueError`` naming any library the export does not pin: a library that left
    the lock must leave the list too.
    """
    pins: dict[str, list[str]] = {}
    for line in exported.splitlines():
        match = _PIN.match(line)
        if match and normalize(match["name"]) in names:
            pins.setdefault(normalize(match["name"]), []).append(line.strip())
    missing = sorted(names - pins.keys())
    if missing:
        raise ValueError(
            f"not pinned by the pipeline's export: {', '.join(missing)}; "
            "update AFFECTS_OUTPUTS in scripts/pipeline_libraries.py"
        )
    return [line for name in sorted(pins) for line in pins[name]]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: pipeline_libraries.py EXPORTED_REQUIREMENTS OUTPUT\n")
        return 2
    exported, output = (Path(arg) for arg in argv)
    try:
        lines = select_pins(exported.read_text(encoding="utf-8"), set(AFFECTS_OUTPUTS))
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
