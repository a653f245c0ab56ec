"""The sweep stage's inputs, hashed: what names a shared study and what a worker must match.

A study holds trials of one objective. Its name is derived from everything that decides a
trial's params and score, so a rerun with the same inputs resumes the study (the trials
already finished count) and a changed input starts a new one; a worker refuses to join a
study whose inputs differ from its own checkout's:

- the ``sweep`` params, except those that only say how to run it (:data:`EXECUTION_KEYS`:
  raising ``n_trials`` extends the same study);
- the training split and the upstream choices' reports (relative to the working directory);
- the source of the modules that build and run the objective and the worker loop
  (:data:`OBJECTIVE_MODULES`; tests/ci/test_stage_deps.py checks the list against their
  import graph);
- the installed versions of the libraries that change outputs
  (``requirements/pipeline-libraries.txt`` names them).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from housing.io import sha256_file
from housing.sweep.config import SweepSpec
from housing.sweep.engine import Objective, SweepRunError

TRAIN = Path("data/split/train.parquet")
# The upstream choices' reports (housing.choices reads them; not imported here, because it
# imports scikit-learn, which a worker of another objective does not need).
DATA = (
    TRAIN,
    Path("reports/preprocess/imputation.json"),
    Path("reports/featurize/features.json"),
    Path("reports/select/leaderboard.json"),
)
LIBRARIES = Path("requirements/pipeline-libraries.txt")
EXECUTION_KEYS = frozenset(
    {
        "engine",
        "n_trials",
        "storage",
        "workers",
        "timeout_s",
        "heartbeat_s",
        "grace_s",
        "max_retry",
        "wandb_project",
        # Chosen after the search, on its best params: it changes no trial.
        "bagging",
    }
)
OBJECTIVE_MODULES = (
    "housing",
    "housing.choices",
    "housing.contract",
    "housing.cv",
    "housing.features",
    "housing.io",
    "housing.metrics",
    "housing.model",
    "housing.names",
    "housing.serving",
    "housing.serving.neighbors",
    "housing.serving.transforms",
    "housing.sweep",
    "housing.sweep.config",
    "housing.sweep.engine",
    "housing.sweep.inputs",
    "housing.sweep.result",
    "housing.sweep.tracking",
    "housing.sweep.wandb_engine",
    "housing.sweep.worker",
    "housing.tuning",
)
STUDY_PREFIX = "housing-sweep-"


@dataclass(frozen=True)
class StudyPlan:
    """What every worker of one study searches, and the digest of what it was built from."""

    spec: SweepSpec
    objective: Objective
    seed: int  # worker i samples with seed + i
    digest: str
    label: str = ""  # what is searched (the model family), for log lines


def study_name(digest: str) -> str:
    """The study of these inputs: a stable, readable name."""
    return f"{STUDY_PREFIX}{digest[:16]}"


def module_sources(modules: tuple[str, ...] = OBJECTIVE_MODULES) -> dict[str, str]:
    """sha256 of each module's source file, wherever it is installed."""
    out = {}
    for name in modules:
        found = importlib.util.find_spec(name)
        if found is None or not found.origin:
            raise FileNotFoundError(f"module {name} has no source file")
        out[name] = sha256_file(found.origin)
    return out


def library_versions(pins: Path = LIBRARIES) -> dict[str, str]:
    """Installed versions of the libraries ``pins`` lists (none when it is absent)."""
    if not pins.is_file():
        return {}
    names = re.findall(r"^([A-Za-z0-9_.\-]+)==", pins.read_text(encoding="utf-8"), re.MULTILINE)
    out = {}
    for name in sorted(names):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def inputs_digest(
    p: Mapping[str, Any],
    *,
    data: tuple[Path, ...] = DATA,
    modules: tuple[str, ...] = OBJECTIVE_MODULES,
    pins: Path = LIBRARIES,
) -> str:
    """sha256 over the sweep params (minus :data:`EXECUTION_KEYS`), the data files, the
    modules' sources and the library versions."""
    payload = {
        "params": {k: v for k, v in p.items() if k not in EXECUTION_KEYS},
        "data": {str(path): sha256_file(path) for path in data},
        "code": module_sources(modules),
        "libraries": library_versions(pins),
    }
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def checkout_plan(p: Mapping[str, Any]) -> StudyPlan:
    """The sweep stage's plan in this checkout: :func:`housing.tuning.plan_sweep` on the
    train split, with the digest of every input."""
    import pandas as pd

    from housing.tuning import plan_sweep  # the tuning module imports this package

    missing = [str(path) for path in DATA if not path.is_file()]
    if missing:
        raise SweepRunError(
            f"{', '.join(missing)} not found in {Path.cwd()}: run at the repository root, "
            "after dvc pull (or dvc repro select)"
        )
    plan = plan_sweep(p, pd.read_parquet(TRAIN))
    return StudyPlan(
        spec=plan.spec,
        objective=plan.objective,
        seed=int(p["seed"]),
        digest=inputs_digest(p),
        label=plan.family,
    )
