"""``housing-registry register``: the committed bundle into a fresh registry, gated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from registry_support import DATA_MD5, committed_bundle
from typer.testing import CliRunner

from housing.registry import list_versions, version_for_alias
from housing.registry.cli import app
from housing.registry.history import events_from_tags

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, housing_df) -> Path:
    """A work tree with two committed bundles (weak, strong), a test split and params.yaml."""
    from housing.contract import TARGET

    root = tmp_path_factory.mktemp("committed")
    sample = housing_df.dropna(subset=[TARGET]).sample(4000, random_state=3)
    train, test = sample.iloc[:3000].reset_index(drop=True), sample.iloc[3000:]
    (root / "data" / "split").mkdir(parents=True)
    test.to_parquet(root / "data" / "split" / "test.parquet")
    committed_bundle(root / "weak", train, test, n_estimators=20)
    committed_bundle(root / "strong", train, test, n_estimators=300)
    params = {
        "register": {
            "model_name": "housing_price_model",
            "experiment": "housing-price",
            "bootstrap_resamples": 300,
            "seed": 42,
            "gates": {"min_r2": 0.5, "max_rmse": 90_000, "max_delta_rmse": 300},
        }
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


@pytest.fixture(autouse=True)
def _restore_root_logging():
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _register(repo: Path, uri: str, bundle: str, *extra: str):
    args = [
        "register",
        "--tracking-uri", uri,
        "--bundle-dir", str(repo / bundle),
        "--test-split", str(repo / "data" / "split" / "test.parquet"),
        "--params", str(repo / "params.yaml"),
        *extra,
    ]  # fmt: skip
    env = {"MLFLOW_TRACKING_URI": None, "MLFLOW_LOGGING_LEVEL": None, "HOUSING_ACTOR": "tester"}
    return CliRunner().invoke(app, args, env=env)


def test_register_committed_bundles_through_the_gate(repo: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    first = _register(repo, uri, "weak")
    assert first.exit_code == 0, first.output
    assert "version 1: promoted to champion. Promoted: first model" in first.stdout

    again = _register(repo, uri, "weak")
    assert again.exit_code == 0, again.output
    assert "version 2: held as challenger" in again.stdout
    assert "same predictions as champion v1" in again.stdout

    better = _register(repo, uri, "strong")
    assert better.exit_code == 0, better.output
    assert "version 3: promoted to champion. Promoted: paired dRMSE vs champion v1" in better.stdout
    v3 = version_for_alias(tracking_uri=uri)
    assert v3.version == "3" and v3.tags["data_md5"] == DATA_MD5
    assert float(v3.tags["gate.delta_rmse_ci95_high"]) < 0
    assert v3.tags["registered_by"] == "housing-registry register"
    assert v3.tags["gate.champion_version"] == "1"

    forced = _register(repo, uri, "weak", "--promote", "--reason", "compose smoke test")
    assert forced.exit_code == 0, forced.output
    assert "version 4: promoted to champion" in forced.stdout
    v4 = version_for_alias(tracking_uri=uri)
    assert v4.version == "4" and v4.tags["promotion.mode"] == "manual"
    assert v4.tags["gate.decision"] == "held"  # the gate's verdict stays on record
    assert v4.tags["promotion.reason"].startswith("compose smoke test (manual; gates said: Held")

    from mlflow import MlflowClient

    tags = (
        MlflowClient(tracking_uri=uri, registry_uri=uri)
        .get_registered_model("housing_price_model")
        .tags
    )
    events = events_from_tags(tags)
    assert [(e.version, e.action, e.who) for e in events] == [
        ("1", "gates", "tester"),
        ("3", "gates", "tester"),
        ("4", "manual", "tester"),
    ]
    assert [v.version for v in list_versions(tracking_uri=uri)] == ["4", "3", "2", "1"]


def test_register_errors_are_one_line_and_register_nothing(repo: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tampered = tmp_path / "tampered"
    shutil.copytree(repo / "weak", tampered)
    meta = tampered / "model.json"
    meta.write_text(meta.read_text().replace('"rmse": ', '"rmse": 1', 1))
    cases = [
        (("weak", "--promote"), "--promote needs --reason"),
        (("weak", "--reason", "x"), "--reason is only for --promote"),
        ((str(tampered),), "bundle and test split are from different commits"),
        (("nope",), "cannot load the committed bundle"),
    ]
    for args, needle in cases:
        result = _register(repo, uri, *args)
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert not (tmp_path / "mlflow.db").exists()
