"""log_and_register, list, promote, rollback and resolve against a real SQLite MLflow registry."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from registry_support import (
    Scenario,
    free_port,
    hgb_pipeline,
    register_kwargs,
    synthetic_frame,
    write_bundle,
)
from typer.testing import CliRunner

from housing.io import sha256_file
from housing.registry import (
    MODEL_NAME,
    RegistryError,
    list_versions,
    log_and_register,
    promote,
    resolve,
    rollback,
    set_challenger,
    version_for_alias,
)
from housing.registry.cli import app

pytestmark = pytest.mark.slow


def _by_version(versions):
    return {v.version: v for v in versions}


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _events(uri):
    from housing.registry.history import events_from_tags

    return events_from_tags(_client(uri).get_registered_model(MODEL_NAME).tags)


def _history(uri):
    """The champion stack replayed from the event log (what rollback walks)."""
    from housing.registry.history import champion_stack

    return champion_stack(_events(uri))


# --- log_and_register ---------------------------------------------------------------------


def test_first_version_becomes_champion_with_lineage_tags(registry_scenario: Scenario):
    reg = registry_scenario.registrations["1"]
    assert (reg.name, reg.version, reg.promoted, reg.previous_champion) == (
        MODEL_NAME,
        "1",
        True,
        None,
    )
    assert reg.model_uri == f"models:/{MODEL_NAME}/1"
    assert reg.artifact_sha256 == sha256_file(registry_scenario.bundles["1"] / "model.skops")
    (v1,) = registry_scenario.snapshots["1"]
    assert v1.aliases == ["champion"]
    assert v1.run_id == reg.run_id
    assert v1.metrics == {"r2": 0.86, "rmse": 44_000.0}
    assert v1.tags["artifact_sha256"] == reg.artifact_sha256
    assert v1.tags["git_commit"] == "abc123" and v1.tags["data_md5"] == "d41d8cd9"
    assert v1.tags["metric.rmse"] == "44000.0"
    assert v1.tags["promotion.decision"] == "promoted"
    assert v1.tags["promotion.previous_champion"] == ""
    assert "first model" in v1.tags["promotion.reason"]
    datetime.fromisoformat(v1.tags["promotion.at"])


def test_worse_second_version_is_held_as_challenger(registry_scenario: Scenario):
    reg = registry_scenario.registrations["2"]
    assert not reg.promoted and not reg.decision.promote
    assert reg.previous_champion == "1"
    assert reg.decision.outcome == "held"
    assert "upper bound exceeds the limit" in reg.decision.reason
    assert reg.decision.bootstrap.delta.low > 0  # clearly worse on the held-out rows
    versions = _by_version(registry_scenario.snapshots["2"])
    assert [v.version for v in registry_scenario.snapshots["2"]] == ["2", "1"]  # newest first
    assert versions["1"].aliases == ["champion"]
    assert versions["2"].aliases == ["challenger"]
    assert versions["2"].tags["promotion.decision"] == "held"
    assert versions["2"].tags["promotion.reason"] == reg.decision.reason
    assert versions["2"].tags["promotion.previous_champion"] == "1"
    assert versions["2"].tags["gate.decision"] == "held"
    assert versions["2"].tags["gate.champion_version"] == "1"
    assert float(versions["2"].tags["gate.delta_rmse_ci95_low"]) > 0
    assert versions["2"].tags["test_fingerprint"] == versions["1"].tags["test_fingerprint"]
    assert reg.gate_tags == {k: versions["2"].tags[k] for k in reg.gate_tags}


def test_better_third_version_takes_champion_and_records_history(registry_scenario: Scenario):
    reg = registry_scenario.registrations["3"]
    assert reg.promoted and reg.previous_champion == "1"
    versions = _by_version(list_versions(tracking_uri=registry_scenario.uri))
    assert versions["3"].aliases == ["champion"]
    assert versions["1"].aliases == [] and versions["2"].aliases == []
    assert versions["3"].tags["promotion.previous_champion"] == "1"
    assert _history(registry_scenario.uri) == ["1", "3"]
    first, second = _events(registry_scenario.uri)
    assert (first.seq, first.version, first.previous, first.action) == (1, "1", None, "gates")
    assert (second.seq, second.version, second.previous, second.action) == (2, "3", "1", "gates")
    assert second.why == reg.decision.reason and second.who
    assert reg.promotion_sequence == 2 and versions["3"].tags["promotion.sequence"] == "2"
    assert float(versions["3"].tags["gate.delta_rmse_ci95_high"]) < 0


def test_the_challenger_moves_are_signed_records_in_a_log_of_their_own(
    registry_scenario: Scenario,
):
    """v2 held: it takes challenger (move #1); v3 promoted: v2 is dropped (move #2). The
    champion's log still counts 1, 2: the challenger's moves never advance it."""
    from housing.registry.history import CHALLENGER_LOG, read_events

    uri, regs = registry_scenario.uri, registry_scenario.registrations
    assert (regs["1"].challenger_sequence, regs["2"].challenger_sequence) == (None, 1)
    assert regs["3"].challenger_sequence == 2
    client = _client(uri)
    events, _ = read_events(client, MODEL_NAME, CHALLENGER_LOG)
    assert [(e.seq, e.version, e.previous, e.action) for e in events] == [
        (1, "2", None, "hold"),
        (2, "2", "2", "drop"),
    ]
    assert events[0].why == regs["2"].decision.reason and "v3 was promoted" in events[1].why
    assert [e.seq for e in _events(uri)] == [1, 2]
    tags = client.get_model_version(MODEL_NAME, "2").tags
    assert tags["challenger.record"] == events[1].record == "challenger/000002"
    assert (tags["challenger.action"], tags["challenger.sequence"]) == ("drop", "2")
    assert "promotion.record" not in tags  # a held version never had a champion record
    run_dir = next(registry_scenario.root.rglob(f"{regs['2'].run_id}/artifacts"))
    records = [json.loads((run_dir / e.record / "promotion.json").read_text()) for e in events]
    assert [(r["alias"], r["version"], r["sequence"]) for r in records] == [
        ("challenger", "2", 1),
        ("challenger", "2", 2),
    ]
    assert [(r["action"], r["extra"]["mode"]) for r in records] == [
        ("promote", "hold"),
        ("drop", "drop"),
    ]
    assert records[1]["extra"]["previous_challenger"] == "2"


def test_run_records_params_metrics_tags_note_plots_and_bundle(registry_scenario: Scenario):
    client = _client(registry_scenario.uri)
    reg = registry_scenario.registrations["1"]
    run = client.get_run(reg.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.alpha"] == "1.0"
    assert run.data.params["train.features"] == json.dumps(
        ["median_income", "housing_median_age", "total_rooms"]
    )
    assert run.data.params["seed"] == "42"
    assert run.data.metrics == {"r2": 0.86, "rmse": 44_000.0}
    assert run.data.tags["sweep_id"] == "sw-1" and run.data.tags["engine"] == "optuna"
    assert run.data.tags["mlflow.note.content"].startswith("Ridge on three features")
    assert [a.path for a in client.list_artifacts(reg.run_id, "plots")] == [
        "plots/pred_vs_actual.csv"
    ]
    assert sorted(a.path for a in client.list_artifacts(reg.run_id, "bundle")) == [
        "bundle/model.json",
        "bundle/model.skops",
    ]
    model = client.get_registered_model(MODEL_NAME)
    assert "champion" in model.description and "challenger" in model.description
    description = client.get_model_version(MODEL_NAME, "2").description
    assert "held as `challenger`" in description and "paired dRMSE" in description


def test_artifacts_land_beside_the_database_not_in_the_working_dir(registry_scenario: Scenario):
    assert list(registry_scenario.scratch_cwd.iterdir()) == []
    assert (registry_scenario.root / "mlartifacts").is_dir()
    skops_files = list((registry_scenario.root / "mlartifacts").rglob("bundle/model.skops"))
    assert len(skops_files) == 3


@pytest.mark.parametrize("version", ["2", "3"])
def test_logged_model_loads_through_mlflow_and_predicts_the_same(
    registry_scenario: Scenario, version: str, monkeypatch
):
    import mlflow

    # MLflow 3 refuses to deserialise any model (skops too) unless this is set.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    mlflow.set_tracking_uri(registry_scenario.uri)
    mlflow.set_registry_uri(registry_scenario.uri)
    loaded = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{version}")
    X = registry_scenario.X
    np.testing.assert_array_equal(loaded.predict(X), registry_scenario.models[version].predict(X))


def test_untrusted_skops_types_are_refused_unless_trusted(registry_copy: str, tmp_path: Path):
    X, y = synthetic_frame(seed=1)
    model = hgb_pipeline(X, y)
    untrusted = write_bundle(model, tmp_path / "bundle", note="hgb")
    assert untrusted  # TreePredictor and friends
    plot = tmp_path / "p.csv"
    plot.write_text("a\n1\n")
    kwargs = register_kwargs(
        model, tmp_path / "bundle", X, {"r2": 0.9, "rmse": 1.0}, [], plot, registry_copy
    )
    with pytest.raises(RegistryError, match="untrusted types"):
        log_and_register(**kwargs)
    assert [v.version for v in list_versions(tracking_uri=registry_copy)] == ["3", "2", "1"]


def test_bad_inputs_fail_before_anything_is_logged(registry_copy: str, tmp_path: Path):
    X, _ = synthetic_frame()
    kwargs = register_kwargs(
        None, tmp_path / "nope", X, {"r2": 0.9}, [], tmp_path / "p.csv", registry_copy
    )
    with pytest.raises(RegistryError, match=r"has no model\.skops"):
        log_and_register(**kwargs)


def test_without_a_signing_key_nothing_is_registered(
    registry_copy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every registration signs an alias move (held: challenger), so the key comes first."""
    X, _ = synthetic_frame()
    kwargs = register_kwargs(
        None, tmp_path / "b", X, {"r2": 0.9, "rmse": 1.0}, [], tmp_path / "p.csv", registry_copy
    )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model.skops").write_bytes(b"not read before the key")
    (tmp_path / "p.csv").write_text("a\n1\n")
    monkeypatch.delenv("HOUSING_ALLOW_UNSIGNED")
    monkeypatch.chdir(tmp_path)  # no development key in this workspace
    with pytest.raises(RegistryError, match="no signing key"):
        log_and_register(**kwargs)
    assert [v.version for v in list_versions(tracking_uri=registry_copy)] == ["3", "2", "1"]


# --- resolve ------------------------------------------------------------------------------


def test_resolve_champion_downloads_bundle_with_matching_sha(
    registry_scenario: Scenario, tmp_path: Path
):
    resolved = resolve(tracking_uri=registry_scenario.uri, dst=tmp_path / "dl")
    assert (resolved.name, resolved.version, resolved.alias) == (MODEL_NAME, "3", "champion")
    assert resolved.run_id == registry_scenario.registrations["3"].run_id
    assert resolved.bundle_local_dir.is_relative_to(tmp_path / "dl")
    skops_file = resolved.bundle_local_dir / "model.skops"
    assert sha256_file(skops_file) == resolved.artifact_sha256
    assert resolved.artifact_sha256 == sha256_file(registry_scenario.bundles["3"] / "model.skops")
    assert json.loads((resolved.bundle_local_dir / "model.json").read_text())["note"] == "v3"
    assert resolved.metrics == {"r2": 0.87, "rmse": 43_000.0}
    assert resolved.tags["git_commit"] == "abc123"


def test_resolve_default_dst_and_unknown_alias(registry_scenario: Scenario):
    resolved = resolve(tracking_uri=registry_scenario.uri)
    try:
        assert (resolved.bundle_local_dir / "model.skops").is_file()
    finally:
        import shutil

        shutil.rmtree(resolved.bundle_local_dir.parent)
    with pytest.raises(RegistryError, match="no version with alias 'challenger'"):
        resolve("challenger", tracking_uri=registry_scenario.uri)


# --- promote / rollback -------------------------------------------------------------------


def test_promote_then_rollback_twice_records_reasons(registry_copy: str):
    uri = registry_copy
    info = promote("2", "hotfix: v2 handles the new district codes", tracking_uri=uri, who="ana")
    assert info.version == "2" and info.aliases == ["champion"]
    assert info.tags["promotion.mode"] == "manual" and info.tags["promotion.by"] == "ana"
    assert info.tags["promotion.reason"] == "hotfix: v2 handles the new district codes"
    assert info.tags["promotion.previous_champion"] == "3"
    assert _history(uri) == ["1", "3", "2"]

    back = rollback("v2 mispriced coastal districts", tracking_uri=uri)
    assert back.version == "3" and back.aliases == ["champion"]
    assert back.tags["promotion.mode"] == "rollback"
    assert back.tags["promotion.reason"] == "v2 mispriced coastal districts"
    assert back.tags["promotion.previous_champion"] == "2"
    v2 = _by_version(list_versions(tracking_uri=uri))["2"]
    assert v2.tags["rollback.reason"] == "v2 mispriced coastal districts"
    assert v2.aliases == []

    events = _events(uri)
    assert [(e.seq, e.version, e.previous, e.action) for e in events[2:]] == [
        (3, "2", "3", "manual"),
        (4, "3", "2", "rollback"),
    ]
    assert events[2].who == "ana" and events[3].why == "v2 mispriced coastal districts"
    assert back.tags["promotion.sequence"] == "4"
    datetime.fromisoformat(events[3].when)

    again = rollback("v3 drifted", tracking_uri=uri)
    assert again.version == "1"
    assert version_for_alias(tracking_uri=uri).version == "1"
    assert _history(uri) == ["1"]

    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback("once more", tracking_uri=uri)
    assert version_for_alias(tracking_uri=uri).version == "1"  # unchanged by the failure
    assert len(_events(uri)) == 5


def test_promote_refuses_when_the_champion_moved_since_evaluation(registry_copy: str):
    uri = registry_copy
    with pytest.raises(RegistryError, match=r"moved since evaluation \(expected 1, found 3\)"):
        promote("2", "evaluated against v1", tracking_uri=uri, expected_current="1")
    assert version_for_alias(tracking_uri=uri).version == "3"
    assert len(_events(uri)) == 2  # nothing recorded
    assert (
        promote("2", "evaluated against v3", tracking_uri=uri, expected_current="3").version == "2"
    )


def test_a_failure_before_the_commit_point_changes_nothing(
    registry_copy: str, monkeypatch: pytest.MonkeyPatch
):
    import importlib

    promote_module = importlib.import_module("housing.registry.promote")  # not the function
    uri = registry_copy
    set_challenger("2", "shadow it", tracking_uri=uri)  # a signed move: recovery keeps it
    before = _by_version(list_versions(tracking_uri=uri))
    assert before["3"].aliases == ["champion"] and before["2"].aliases == ["challenger"]

    def concurrent_writer(*args, **kwargs):
        raise RegistryError("another writer appended champion_event.3 first")

    monkeypatch.setattr(promote_module, "append_event", concurrent_writer)
    with pytest.raises(RegistryError, match="another writer"):
        promote("2", "hotfix", tracking_uri=uri, who="ana")
    after = _by_version(list_versions(tracking_uri=uri))
    assert after["3"].aliases == ["champion"] and after["2"].aliases == ["challenger"]
    promotion = {k: v for k, v in after["2"].tags.items() if k.startswith("promotion.")}
    assert promotion == {k: v for k, v in before["2"].tags.items() if k.startswith("promotion.")}
    assert promotion.get("promotion.decision") != "promoted"
    assert len(_events(uri)) == 2  # nothing recorded


def test_a_challenger_move_interrupted_after_its_commit_point_is_completed(
    registry_copy: str, monkeypatch: pytest.MonkeyPatch
):
    """The process dies between the event (the commit point) and the alias: whatever runs
    next (an export, a registration, a promotion) completes the move from the event."""
    from mlflow import MlflowClient

    from housing.registry.history import CHALLENGER_LOG, read_events
    from housing.registry.promote import recover_champion

    uri = registry_copy

    def killed(*args, **kwargs):
        raise SystemExit("killed before the alias moved")

    with monkeypatch.context() as patched:
        patched.setattr(MlflowClient, "set_registered_model_alias", killed)
        with pytest.raises(SystemExit):
            set_challenger("1", "interrupted", tracking_uri=uri, who="ana")
    client = _client(uri)
    assert "challenger" not in client.get_registered_model(MODEL_NAME).aliases
    last = read_events(client, MODEL_NAME, CHALLENGER_LOG)[0][-1]
    assert (last.seq, last.version, last.action, last.who) == (3, "1", "manual", "ana")
    recover_champion(uri)
    assert str(client.get_registered_model(MODEL_NAME).aliases["challenger"]) == "1"
    assert client.get_model_version(MODEL_NAME, "1").tags["challenger.sequence"] == "3"
    assert [e.seq for e in _events(uri)] == [1, 2]  # the champion's log untouched
    # The alias moved by hand, outside the log: the next recovery puts it back.
    client.set_registered_model_alias(MODEL_NAME, "challenger", "2")
    recover_champion(uri)
    assert str(client.get_registered_model(MODEL_NAME).aliases["challenger"]) == "1"


def test_actor_comes_from_ci_or_the_os_user():
    from housing.registry import actor

    assert actor({"GITHUB_ACTOR": "octocat", "CI": "true"}) == "github:octocat"
    assert actor({"HOUSING_ACTOR": "release-bot", "GITHUB_ACTOR": "x"}) == "release-bot"
    assert actor({"CI": "1"}).startswith("ci:")
    assert actor({}) and not actor({}).startswith("ci:")


def test_legacy_json_history_seeds_the_replay(registry_copy: str):
    from housing.registry.history import LEGACY_HISTORY_TAG, champion_stack

    client = _client(registry_copy)
    for key in list(client.get_registered_model(MODEL_NAME).tags):
        if key.startswith("champion_event."):
            client.delete_registered_model_tag(MODEL_NAME, key)
    client.set_registered_model_tag(MODEL_NAME, LEGACY_HISTORY_TAG, json.dumps(["2", "3"]))
    assert champion_stack([], ["2", "3"]) == ["2", "3"]
    assert rollback("back to the legacy previous", tracking_uri=registry_copy).version == "2"


def test_promote_refuses_unknown_version_current_champion_and_blank_reason(registry_copy: str):
    with pytest.raises(RegistryError, match="has no version '9'"):
        promote("9", "why not", tracking_uri=registry_copy)
    with pytest.raises(RegistryError, match="already the champion"):
        promote("3", "again", tracking_uri=registry_copy)
    with pytest.raises(RegistryError, match="reason is required"):
        promote("2", "  ", tracking_uri=registry_copy)


def test_rollback_without_champion_and_unknown_model(registry_copy: str):
    _client(registry_copy).create_registered_model("empty_model")
    with pytest.raises(RegistryError, match="no champion to roll back from"):
        rollback("nothing here", model_name="empty_model", tracking_uri=registry_copy)
    with pytest.raises(RegistryError, match="no registered model named 'nope'"):
        list_versions(model_name="nope", tracking_uri=registry_copy)


def test_missing_sqlite_database_is_an_error_not_a_new_registry(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'typo.db'}"
    with pytest.raises(RegistryError, match="no MLflow database"):
        list_versions(tracking_uri=uri)
    assert not (tmp_path / "typo.db").exists()


# --- CLI ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """The CLI configures root logging as an entry point should; undo it for later tests."""
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _invoke(*args: str):
    # Listing a key in env makes CliRunner restore it afterwards (the CLI sets the log level).
    env = {"MLFLOW_TRACKING_URI": None, "MLFLOW_LOGGING_LEVEL": None}
    return CliRunner().invoke(app, list(args), env=env)


def test_cli_list_show_promote_rollback(registry_copy: str):
    uri = ["--tracking-uri", registry_copy]
    listed = _invoke("list", *uri)
    assert listed.exit_code == 0, listed.output
    rows = listed.stdout.strip().splitlines()
    assert rows[0].split()[:4] == ["VERSION", "ALIASES", "RMSE", "R2"]
    assert [r.split()[:2] for r in rows[1:]] == [["3", "champion"], ["2", "-"], ["1", "-"]]
    assert rows[1].split()[2:4] == ["43,000", "0.8700"]
    assert "held" in rows[2]

    as_json = _invoke("list", "--json", *uri)
    assert [v["version"] for v in json.loads(as_json.stdout)] == ["3", "2", "1"]

    shown = _invoke("show", *uri)
    assert shown.exit_code == 0
    assert "version:    3" in shown.stdout and "aliases:    champion" in shown.stdout

    stale = _invoke("promote", "2", "--reason", "reviewed v1", "--expect-champion", "1", *uri)
    assert stale.exit_code == 1 and "moved since evaluation" in stale.stderr
    promoted = _invoke("promote", "2", "--reason", "manual check", "--expect-champion", "3", *uri)
    assert promoted.exit_code == 0
    assert promoted.stdout.strip() == (
        f"champion of {MODEL_NAME} is now version 2 (was 3); "
        "promotion #3 UNSIGNED (HOUSING_ALLOW_UNSIGNED=1)"
    )

    rolled = _invoke("rollback", "--reason", "undo", *uri)
    assert rolled.exit_code == 0
    assert rolled.stdout.strip() == (
        f"champion of {MODEL_NAME} rolled back to version 3 (was 2); "
        "promotion #4 UNSIGNED (HOUSING_ALLOW_UNSIGNED=1)"
    )
    assert _invoke("show", "--alias", "champion", *uri).stdout.count("version:    3") == 1

    history = _invoke("history", *uri)
    assert history.exit_code == 0
    lines = history.stdout.strip().splitlines()
    assert len(lines) == 4, lines  # v1 and v3 by the gates, then the two moves above
    assert "v3 -> v2  manual by" in lines[2] and "(unsigned): manual check" in lines[2]
    assert "v2 -> v3  rollback by" in lines[3] and lines[3].endswith(": undo")


SHADOW = {
    "challenger_version": "1",
    "champion_version": "3",
    "instances": 1234,
    "mean_abs_diff": 1234.5,
    "mean_rel_diff": 0.031,
    "inside_interval_share": 0.94,
    "window": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"},
}


def test_cli_moves_and_shows_the_challenger_with_its_record_and_evidence(
    registry_copy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    uri = ["--tracking-uri", registry_copy]
    refused = _invoke("challenger", "3", "--reason", "shadow the champion", *uri)
    assert refused.exit_code == 1 and "is the champion" in refused.stderr
    moved = _invoke("challenger", "1", "--reason", "shadow the old ridge", *uri)
    assert moved.exit_code == 0, moved.output
    assert moved.stdout.strip() == (
        f"challenger of {MODEL_NAME} is now version 1 (was none); "
        "challenger move #3 UNSIGNED (HOUSING_ALLOW_UNSIGNED=1)"
    )

    # No summary in the workspace (the working directory): the show says so.
    monkeypatch.chdir(tmp_path)
    shown = _invoke("show", "--alias", "challenger", *uri)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert "version:    1" in out and "aliases:    challenger" in out
    assert "challenger record: challenger/000003 (challenger move #3, promote (manual))" in out
    assert f"record:     {MODEL_NAME} version 1 as 'challenger'; UNSIGNED" in out
    assert "verified:   not verified: UNSIGNED" in out and "reason:     shadow the old ridge" in out
    assert (
        "shadow evidence: none for version 1 (monitoring/summary.json has no shadow summary)" in out
    )

    summary = tmp_path / "monitoring" / "summary.json"
    summary.parent.mkdir()
    summary.write_text(json.dumps({"drift": {}, "shadow": SHADOW}))
    out = _invoke("show", "--alias", "challenger", *uri).stdout
    assert "shadow evidence (" in out and "window:     2026-12-01T00:00:00Z .. 2026-12-02" in out
    assert "instances:  1,234 scored by both, against champion 3" in out
    assert "mean |diff|: 1,234.5 USD (3.1% relative)" in out
    assert "inside the champion's interval: 94.0%" in out

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"shadow": {**SHADOW, "challenger_version": "2"}}))
    out = _invoke("show", "--alias", "challenger", "--evidence", str(other), *uri).stdout
    assert "shadow evidence: none for version 1" in out and "about version 2" in out
    assert "instances:" not in out
    other.write_text("{not json")
    out = _invoke("show", "--alias", "challenger", "--evidence", str(other), *uri).stdout
    assert "shadow evidence: unreadable" in out
    # The champion's show has neither section.
    champion = _invoke("show", *uri).stdout
    assert "challenger record" not in champion and "shadow evidence" not in champion

    dropped = _invoke("challenger", "--drop", "--reason", "enough shadowing", *uri)
    assert dropped.exit_code == 0, dropped.output
    assert dropped.stdout.startswith(f"challenger of {MODEL_NAME} dropped from version 1;")
    history = _invoke("history", "--alias", "challenger", *uri).stdout.strip().splitlines()
    assert len(history) == 4, history
    assert "-> v2  hold by" in history[0] and "v2 -> -  drop by" in history[1]
    assert "- -> v1  manual by" in history[2] and history[2].endswith(": shadow the old ridge")
    assert "v1 -> -  drop by" in history[3] and history[3].endswith(": enough shadowing")
    assert len(_invoke("history", *uri).stdout.strip().splitlines()) == 2  # the champion's
    none = _invoke("challenger", "--drop", "--reason", "again", *uri)
    assert none.exit_code == 1 and "has no challenger to drop" in none.stderr


def test_cli_errors_are_one_line_with_exit_code_1(registry_copy: str):
    uri = ["--tracking-uri", registry_copy]
    for args, needle in [
        (["promote", "42", "--reason", "x"], "has no version '42'"),
        (["show", "--alias", "challenger"], "no version with alias 'challenger'"),
        (["list", "--model-name", "nope"], "no registered model named 'nope'"),
    ]:
        result = _invoke(*args, *uri)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
        assert "Traceback" not in result.output


def _module_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "housing.registry", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_python_dash_m_list_and_one_line_errors(registry_scenario: Scenario, tmp_path: Path):
    ok = _module_cli("list", "--tracking-uri", registry_scenario.uri, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert [line.split()[0] for line in ok.stdout.strip().splitlines()] == [
        "VERSION",
        "3",
        "2",
        "1",
    ]
    assert ok.stderr == ""

    missing = _module_cli("rollback", "--reason", "x", cwd=tmp_path)  # default sqlite:///mlflow.db
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "error: no MLflow database at mlflow.db (tracking URI sqlite:///mlflow.db)"
    ]
    assert not (tmp_path / "mlflow.db").exists()

    down = _module_cli("list", "--tracking-uri", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert down.returncode == 1
    (line,) = down.stderr.strip().splitlines()
    assert line.startswith("error: tracking server unreachable at http://127.0.0.1:")
