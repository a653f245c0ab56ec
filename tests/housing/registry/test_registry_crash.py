"""A promoter killed with SIGKILL after any write of a move leaves a registry the next run
completes: the registry, its histories and the exported champion then agree.

Each case forks a child that runs ``promote()`` or ``rollback()`` on its own copy of a real
SQLite registry and SIGKILLs itself right after its N-th registry write (the lease, the
signed record's artifacts, the event, the version tags, the alias; for the promotion of the
challenger, then the same writes of the challenger's own signed move, its drop): every write
of a dry run of the same move, but the tags between the first and the last of a run of
version tags, which are one step written tag by tag. Forking (not a fresh interpreter) keeps
MLflow imported, so every step of both moves is killed within seconds. The parent then runs
what comes next in real use: an export of the champion (``make serve``'s directory), then
another promotion. (A challenger move on its own is the same sequence with the alias set
instead of deleted; test_registry_mlflow.py interrupts one after its commit point.)
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import pytest
from registry_support import three_versions

from housing.registry import MODEL_NAME, promote, rollback, set_challenger
from housing.registry.history import CHALLENGER_LOG, read_events
from housing.registry.lookup import alias_version
from housing.registry.promote import SEQUENCE_TAG
from housing.registry.signed import RECORD_TAG, export_champion

pytestmark = pytest.mark.slow

WRITES = (
    "create_registered_model",  # the lease
    "log_artifact",  # the signed record, the signature
    "set_registered_model_tag",  # the event
    "set_model_version_tag",  # the promotion.* tags
    "set_registered_model_alias",  # champion, or challenger
    "delete_registered_model_alias",  # challenger (dropped)
)


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _counting(on_write) -> None:
    """Make every registry write of MlflowClient call ``on_write(name)`` once it is done."""
    from mlflow import MlflowClient

    def counting(name, method):
        def wrapper(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            on_write(name)
            return result

        return wrapper

    for name in WRITES:
        setattr(MlflowClient, name, counting(name, getattr(MlflowClient, name)))


def _killed_at(n: int, move, uri: str) -> None:
    """In a forked child: run ``move(uri)``, SIGKILLed after its ``n``-th registry write."""
    count = [0]

    def on_write(_name: str) -> None:
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    _counting(on_write)
    move(uri)
    os._exit(0)


def _writes(move, uri: str) -> list[str]:
    """The registry writes of ``move``, in order (in a forked child: the patch dies with it)."""
    reader, writer = multiprocessing.get_context("fork").Pipe(duplex=False)

    def child() -> None:
        names: list[str] = []
        _counting(names.append)
        move(uri)
        writer.send(names)
        os._exit(0)

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    names = reader.recv()
    proc.join(60)
    return names


def kill_points(writes: list[str]) -> list[int]:
    """Each write that starts or ends a run of the same call (the 1st and the last of the
    promotion.* tags, not the nine between: one step, written tag by tag)."""
    return [
        n
        for n in range(1, len(writes) + 1)
        if n in (1, len(writes)) or writes[n - 1] != writes[n - 2] or writes[n - 1] != writes[n]
    ]


def _state(uri: str, log=None) -> tuple[str | None, list]:
    """(the alias, its event log): the champion's, or with ``log`` that alias's."""
    client = _client(uri)
    if log is None:
        events, _ = read_events(client, MODEL_NAME)
        return alias_version(client, MODEL_NAME, "champion"), events
    events, _ = read_events(client, MODEL_NAME, log)
    return alias_version(client, MODEL_NAME, log.alias), events


def _challenger_settled(uri: str) -> None:
    """The challenger's log and alias agree, every move is signed, and it is not the champion."""
    alias, events = _state(uri, CHALLENGER_LOG)
    last = events[-1]
    assert (alias != last.version) if last.action == "drop" else (alias == last.version)
    assert all(event.key_id for event in events)
    assert alias is None or alias != _state(uri)[0]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, signing_key) -> Path:
    """Versions 1-3, v3 champion then v1 (a history to roll back), v2 the challenger."""
    root = tmp_path_factory.mktemp("crash")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOUSING_SIGNING_KEY", signing_key.private_pem().decode())
        uri = three_versions(root)
        promote("1", "a second champion", tracking_uri=uri, who="setup")
        set_challenger("2", "shadow it", tracking_uri=uri, who="setup")
    return root


def _copy(base: Path, dest: Path) -> str:
    """The base registry's database, private to one case (the artifacts are shared)."""
    dest.mkdir()
    shutil.copy2(base / "mlflow.db", dest / "mlflow.db")
    return f"sqlite:///{dest / 'mlflow.db'}"


# move, its target, the kinds of write it makes
MOVES = {
    # the champion to v2, then the challenger's signed drop of v2: every kind of write
    "promote": (
        lambda uri: promote("2", "killed promote", tracking_uri=uri, who="k"),
        "2",
        set(WRITES),
    ),
    "rollback": (
        lambda uri: rollback("killed rollback", tracking_uri=uri, who="k"),
        "3",
        set(WRITES) - {"delete_registered_model_alias"},
    ),
}


@pytest.mark.parametrize("action", sorted(MOVES))
def test_a_kill_after_any_write_is_completed_by_the_next_run(
    action, base, tmp_path, monkeypatch, signing_key, verify_pem
):
    monkeypatch.setenv("HOUSING_SIGNING_KEY", signing_key.private_pem().decode())
    monkeypatch.setenv("HOUSING_VERIFY_KEYS", verify_pem)
    move, target, kinds = MOVES[action]
    fork = multiprocessing.get_context("fork")
    writes = _writes(move, _copy(base, tmp_path / "dry"))
    assert set(writes) == kinds  # every kind of write it makes is a kill point
    outcomes = []
    for n in kill_points(writes):
        uri = _copy(base, tmp_path / f"kill{n}")
        before_alias, before_events = _state(uri)
        child = fork.Process(target=_killed_at, args=(n, move, uri))
        child.start()
        child.join(120)
        assert child.exitcode == -signal.SIGKILL, (n, child.exitcode)
        alias, events = _state(uri)
        committed = len(events) > len(before_events)
        outcomes.append((n, committed, alias))
        if not committed:  # killed before its commit point: nothing moved
            assert alias == before_alias, n

        # What runs next (the register stage, `housing-registry export`, `make serve`'s
        # champion/): the registry, its histories and the exported directory agree.
        exported = export_champion(tmp_path / f"champion{n}", tracking_uri=uri)
        alias, events = _state(uri)
        assert alias == events[-1].version == (target if committed else before_alias), n
        assert exported.version == alias and exported.sequence == events[-1].seq, n
        tags = _client(uri).get_model_version(MODEL_NAME, alias).tags
        assert tags[SEQUENCE_TAG] == str(events[-1].seq) and tags[RECORD_TAG], n
        _challenger_settled(uri)  # a drop the kill left due is completed, signed, too
        # And the next move completes, with the next sequence number.
        other = "1" if alias != "1" else "3"
        assert promote(other, f"after kill {n}", tracking_uri=uri, who="next").version == other
        assert _state(uri)[1][-1].seq > events[-1].seq, n
        _challenger_settled(uri)
    # Every step was killed once, before and after the commit point.
    assert {committed for _, committed, _ in outcomes} == {True, False}, outcomes
