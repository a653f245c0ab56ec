"""Fixtures shared by every test tier: the real data mirror, splits, and a small real model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scheduling import UnitClock, make_scheduler, order_by_cost, unique_nodeids

# Pin native thread pools before numpy/LightGBM start them (2 shared cores here).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
# Signing and trust keys come only from the tests that set them: a key exported in the
# shell (as `make pipeline` does for the development key) would sign promotions that tests
# expect unsigned, or clash with a test's own HOUSING_SIGNING_KEY ("set only one of").
for _var in (
    "HOUSING_SIGNING_KEY",
    "HOUSING_SIGNING_KEY_FILE",
    "HOUSING_VERIFY_KEYS",
    "HOUSING_VERIFY_KEY_FILES",
):
    os.environ.pop(_var, None)
# So the tests promote unsigned unless they set a key (or drop this): it also turns off the
# discovery of a development key in .keys/ (a test's working directory may be the repo's).
os.environ["HOUSING_ALLOW_UNSIGNED"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(
    os.environ.get("HOUSING_DATA_MIRROR", REPO_ROOT.parent / "shared" / "data" / "housing.csv")
)
MIRROR_SHA256 = "8a3727f4cf54ac1a327f69b1d5b4db54c5834ea81c6e4efc0d163300022a685e"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--unit-durations",
        metavar="PATH",
        help="write each work unit's seconds to PATH as JSON (tests/scheduling.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--unit-durations")
    if path and not hasattr(config, "workerinput"):  # the controller sees every report
        config.pluginmanager.register(UnitClock(Path(path)), "unit-clock")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unique_nodeids(items)
    order_by_cost(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    return make_scheduler(config, log)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def mirror_csv() -> Path:
    """The data set mirror on this machine (never committed). On a GitHub runner, which has
    none, it is fetched once per run from params.yaml's download URL, checksum verified."""
    if not MIRROR.is_file() and os.environ.get("GITHUB_ACTIONS") == "true":
        return _fetched_mirror()
    assert MIRROR.is_file(), f"data mirror not found at {MIRROR}; set HOUSING_DATA_MIRROR"
    return MIRROR


def _fetched_mirror() -> Path:
    import tempfile

    import yaml
    from filelock import FileLock

    from housing.download import fetch

    dest = Path(tempfile.gettempdir()) / "housing-mirror" / "housing.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{dest}.lock"):  # one download for every xdist worker
        if not dest.is_file():
            params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["download"]
            fetch(params["url"], dest, sha256=params["sha256"], timeout=120)
    os.environ["HOUSING_DATA_MIRROR"] = str(dest)  # for the pipelines the tests start
    return dest


@pytest.fixture(scope="session")
def housing_df(mirror_csv: Path) -> pd.DataFrame:
    return pd.read_csv(mirror_csv)


@pytest.fixture(scope="session")
def real_split(housing_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) of the whole data set as the split stage makes them with params.yaml."""
    from housing.io import read_yaml
    from stages.split import split

    p = read_yaml(REPO_ROOT / "params.yaml")["split"]
    return split(
        housing_df,
        test_size=float(p["test_size"]),
        seed=int(p["seed"]),
        income_bins=[float(b) for b in p["income_bins"]],
    )


@pytest.fixture(scope="session")
def small_train(housing_df: pd.DataFrame) -> pd.DataFrame:
    """A 3,000-row deterministic sample: big enough for real behaviour, fast to fit."""
    return housing_df.sample(3000, random_state=7).reset_index(drop=True)


def train_small_model(train: pd.DataFrame, *, family: str = "lightgbm", seed: int = 42):
    """Fit the real model class on ``train`` with small, fast settings."""
    from housing.contract import TARGET
    from housing.model import FeatureConfig, ModelSpec, build_model

    params = {"n_estimators": 60, "num_leaves": 15} if family == "lightgbm" else {}
    spec = ModelSpec(
        imputer="median",
        features=FeatureConfig(n_clusters=5, gamma=1.0, rotations=(30.0, 60.0), neighbors=8),
        family=family,
        params=params,
        seed=seed,
    )
    model = build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])
    return spec, model


def small_interval(train: pd.DataFrame, spec, *, level: float = 0.9, folds: int = 3):
    """The conformal interval of ``spec`` on ``train``, calibrated as the register stage does
    (out-of-fold residuals of the whole model; 3 folds of the stage's seed 2027, for speed)."""
    return small_interval_oof(train, spec, level=level, folds=folds)[0]


def small_interval_oof(train: pd.DataFrame, spec, *, level: float = 0.9, folds: int = 3):
    """:func:`small_interval` and the out-of-fold prices it was calibrated on."""
    from housing.contract import TARGET
    from housing.intervals import calibrate
    from stages.register import out_of_fold

    oof, _ = out_of_fold(spec, train, n_splits=folds, seed=2027)
    return calibrate(train[TARGET].to_numpy(float), oof, level), oof


def write_bundle(directory: Path, train: pd.DataFrame, *, seed: int = 42) -> Path:
    """Train a small real model and save it as the register stage does.

    ``model.skops`` + ``model.json`` + the serving bundle ``serving/`` (written by the same
    functions as stages/register.py: ``out_of_fold`` and ``calibrate`` for its prediction
    interval, ``build_reference`` of the rows and their out-of-fold prices for drift,
    ``write_serving`` then ``save_bundle``).
    """
    from housing.artifact import save_bundle
    from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES, TARGET, derive_contract
    from housing.metrics import regression_report
    from housing.monitor.reference import build_reference
    from housing.serving import SERVING_DIR
    from housing.serving.export import write_serving

    spec, model = train_small_model(train, seed=seed)
    interval, oof = small_interval_oof(train, spec)
    contract = derive_contract(train, margin=0.25)
    y = train[TARGET].to_numpy()
    meta = {
        "name": "housing_price_model",
        "spec": {
            "imputer": spec.imputer,
            "features": spec.features.to_dict(),
            "family": spec.family,
            "params": dict(spec.params),
            "seed": spec.seed,
        },
        "contract": contract.to_dict(),
        "metrics": regression_report(y, model.predict(train.drop(columns=[TARGET]))),
        "data_md5": "test-fixture",
    }
    meta["serving_sha256"] = write_serving(
        Path(directory) / SERVING_DIR,
        model,
        contract=contract.to_dict(),
        interval=interval,
        reference=build_reference(
            train, oof, numeric=NUMERIC_FEATURES, categorical=(CATEGORICAL_FEATURE,)
        ),
    )
    save_bundle(directory, model, meta)
    return directory


def write_champion(
    bundle_dir: Path,
    dest: Path,
    *,
    key=None,
    version: str = "1",
    sequence: int = 1,
    name: str = "housing_price_model",
    action: str = "promote",
) -> Path:
    """``bundle_dir`` promoted: its serving files + a promotion record (+ signature with ``key``).

    Built by the same function promotion uses (``housing.signing.build_champion``); the
    record's name and data md5 are the bundle's own, so only ``version``/``sequence`` vary.
    """
    import json

    from housing.signing import PromotionRecord, build_champion

    meta = json.loads((Path(bundle_dir) / "model.json").read_text())
    record = PromotionRecord(
        name=name,
        version=str(version),
        alias="champion",
        action=action,
        data_md5=str(meta.get("data_md5") or "unknown"),
        git_commit="test-fixture",
        decision="promoted by a test fixture",
        sequence=sequence,
        timestamp="2026-12-02T00:00:00+00:00",
        who="pytest",
    )
    build_champion(bundle_dir, dest, record, key, include=("model.json", "serving"))
    return Path(dest)


@pytest.fixture(scope="session")
def signing_key():
    """A fresh EC P-256 promotion key for the session (never written to disk)."""
    from housing.signing import SigningKey

    return SigningKey.generate()


@pytest.fixture(scope="session")
def verify_pem(signing_key) -> str:
    """The session key's public PEM: what HOUSING_VERIFY_KEYS holds."""
    from housing.signing.keys import public_pem

    return public_pem(signing_key.public_key).decode()


@pytest.fixture(scope="session")
def champion_dir(tmp_path_factory: pytest.TempPathFactory, model_bundle_dir: Path) -> Path:
    """The session bundle promoted without a key (what the API serves with no keys set)."""
    return write_champion(model_bundle_dir, tmp_path_factory.mktemp("champion") / "champion")


@pytest.fixture(scope="session")
def signed_champion_dir(
    tmp_path_factory: pytest.TempPathFactory, model_bundle_dir: Path, signing_key
) -> Path:
    """The session bundle promoted and signed with ``signing_key`` (version 1, sequence 1)."""
    dest = tmp_path_factory.mktemp("signed") / "champion"
    return write_champion(model_bundle_dir, dest, key=signing_key)


@pytest.fixture(scope="session")
def model_bundle_dir(tmp_path_factory: pytest.TempPathFactory, small_train) -> Path:
    """A real, small model bundle directory, as the register stage writes to ``models/``."""
    return write_bundle(tmp_path_factory.mktemp("bundle"), small_train)


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def run_shared_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A directory of this test run that every xdist worker sees (the run's own basetemp)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session")
def pipeline_repo(
    tmp_path_factory: pytest.TempPathFactory, mirror_csv: Path, worker_id: str
) -> Path:
    """A copy of the project where the whole pipeline ran once with fast parameters.

    Built once per test run, by the first worker that needs it, and shared by every worker
    (the others wait on a file lock). Read-only for tests: a test that changes it must work
    on ``copy_workspace`` of it.
    """
    from filelock import FileLock
    from pipeline_support import dvc, git, make_pipeline_repo

    shared = run_shared_dir(tmp_path_factory, worker_id) / "shared-pipeline"
    repo, built = shared / "repo", shared / "built"
    with FileLock(str(shared) + ".lock"):
        if not built.exists():
            shutil.rmtree(shared, ignore_errors=True)  # a build that failed half-way
            make_pipeline_repo(repo)
            dvc(repo, "repro", mirror=mirror_csv)
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "pipeline run")
            built.touch()
    return repo
