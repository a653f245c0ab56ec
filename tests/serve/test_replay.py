"""Replay refused across restarts (serve/replay.py): the newest promotion served is kept in
REPLAY_STATE_DIR, so an older, validly signed champion is refused by the next process too.

The marks are checked on their own (real files), then through real apps restarted over the
local source (here) and the registry source (tests/serve/test_registry_signed.py, step 5); the GCS
source's restart is in tests/remote/test_remote_publish.py, against the emulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from serve_support import copy_bundle, settings_for

from serve.main import create_app
from serve.replay import ReplayMarks, Scope, main, open_marks
from serve.sources.base import SourceError


def _identity(sequence: int, *, version: str = "1", key: str = "k" * 64, registry: str = "r"):
    return SimpleNamespace(
        signed=True,
        key_id=key,
        promotion_sequence=sequence,
        version=version,
        name="housing_price_model",
        alias="champion",
        promotion={"registry": registry},
    )


def test_a_mark_refuses_an_older_sequence_and_admits_the_same_or_a_newer(tmp_path):
    marks = ReplayMarks(tmp_path / "state")
    marks.admit(_identity(5, version="3"))
    again = ReplayMarks(tmp_path / "state")  # another process, after a restart
    with pytest.raises(SourceError) as refused:
        again.admit(_identity(4, version="2"))
    assert str(refused.value).startswith(
        "refused: promotion sequence 4 (version 2) is older than 5 (version 3)"
    )
    again.admit(_identity(5, version="3"))  # the same champion after a restart
    again.admit(_identity(6, version="4"))
    assert again.mark(Scope.of(_identity(6))) == 6


def test_marks_are_per_key_and_registry_and_unsigned_models_are_not_marked(tmp_path):
    marks = ReplayMarks(tmp_path)
    marks.admit(_identity(5))
    marks.admit(_identity(1, key="j" * 64))  # a rotated key starts its own count
    marks.admit(_identity(1, registry="sqlite:////other/mlflow.db"))
    marks.admit(SimpleNamespace(signed=False, key_id=None, promotion_sequence=1))
    assert sorted(e["sequence"] for e in marks.entries()) == [1, 1, 5]


def test_the_reset_command_forgets_a_recreated_registrys_marks(tmp_path, capsys):
    state = tmp_path / "state"
    marks = ReplayMarks(state)
    marks.admit(_identity(5, registry="sqlite:////a/mlflow.db"))
    marks.admit(_identity(7, registry="sqlite:////b/mlflow.db"))
    assert main(["show", "--state-dir", str(state)]) == 0
    assert "sqlite:////a/mlflow.db  housing_price_model@champion" in capsys.readouterr().out
    assert main(["reset", "--state-dir", str(state), "--registry", "sqlite:////a/mlflow.db"]) == 0
    assert capsys.readouterr().out == f"reset 1 mark(s) in {state}\n"
    marks.admit(_identity(1, registry="sqlite:////a/mlflow.db"))  # recreated: counts from 1
    with pytest.raises(SourceError, match="older than 7"):
        marks.admit(_identity(6, registry="sqlite:////b/mlflow.db"))


def test_marks_that_cannot_be_read_refuse_rather_than_forget(tmp_path):
    (tmp_path / "marks.json").write_text("{not json")
    with pytest.raises(SourceError, match=r"replay marks .* unreadable"):
        ReplayMarks(tmp_path).admit(_identity(1))


def test_an_unusable_state_dir_turns_the_marks_off_with_a_warning(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert open_marks(blocker / "state") is None
    assert "replay protection ends when the process does" in caplog.text
    assert open_marks(None) is None


def test_a_restart_refuses_an_older_signed_local_champion(
    tmp_path, model_bundle_dir, signing_key, verify_pem
):
    """The local source (a champion/ directory): v3 at sequence 5 is served, then the
    directory is replaced by v2's genuine champion at sequence 4 and the API restarts."""
    state, live = tmp_path / "replay", tmp_path / "champion"
    settings = {"housing_verify_keys": verify_pem, "replay_state_dir": state}
    copy_bundle(model_bundle_dir, live, key=signing_key, version="3", sequence=5)
    with TestClient(create_app(settings_for(live, **settings))) as client:
        assert client.get("/api/v1/model").json()["promotion"]["sequence"] == 5

    copy_bundle(model_bundle_dir, live, key=signing_key, version="2", sequence=4)
    with TestClient(create_app(settings_for(live, **settings))) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        reason = str(ready.json())
        assert "refused: promotion sequence 4 (version 2) is older than 5 (version 3)" in reason

    assert main(["reset", "--state-dir", str(state)]) == 0  # a deliberate reset, documented
    with TestClient(create_app(settings_for(live, **settings))) as client:
        assert client.get("/api/v1/model").json()["version"] == "2"
    assert json.loads((state / "marks.json").read_text()) != {}


def test_without_a_state_dir_the_restart_is_not_protected(
    tmp_path, model_bundle_dir, signing_key, verify_pem
):
    """What REPLAY_STATE_DIR adds: without it, the older champion comes back."""
    live = tmp_path / "champion"
    copy_bundle(model_bundle_dir, live, key=signing_key, version="3", sequence=5)
    with TestClient(create_app(settings_for(live, housing_verify_keys=verify_pem))) as client:
        assert client.get("/ready").status_code == 200
    copy_bundle(model_bundle_dir, live, key=signing_key, version="2", sequence=4)
    with TestClient(create_app(settings_for(live, housing_verify_keys=verify_pem))) as client:
        assert client.get("/api/v1/model").json()["version"] == "2"
    assert not Path(tmp_path / "replay").exists()
