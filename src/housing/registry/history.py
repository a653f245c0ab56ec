"""Alias histories as append-only event logs on the registered model.

MLflow's REST API has no compare-and-swap, so a history is never rewritten: each move of
``champion`` appends one tag ``champion_event.<seq>`` (zero-padded, so keys sort) holding
JSON ``{seq, version, previous, action, who, when, why, nonce, record, key_id}``; the writer
re-reads the tag to confirm its nonce is the one stored. The event is a promotion's commit
point: it is written after the signed record and before the alias moves, so a promotion
killed after it is completed by the next one (``housing.registry.promote.recover``).
A promotion refused because another held its sequence number leaves a
``champion_attempt.<seq>.<nonce>`` tag instead: the history keeps both. The stack of
champions that :func:`rollback` walks is a replay of the log (promotions push, rollbacks
pop), seeded from the legacy ``champion_history`` JSON tag of registries written before
the log existed.

``challenger`` keeps a log of its own (:data:`CHALLENGER_LOG`: ``challenger_event.<seq>``,
its own sequence, leases and record folders), so its moves never advance or reorder the
champion's sequence, which the API's replay protection counts.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from housing.registry.records import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

EVENT_TAG_PREFIX = "champion_event."
LEGACY_HISTORY_TAG = "champion_history"
_SEQ_WIDTH = 6
ACTIONS = ("gates", "manual", "rollback")


@dataclass(frozen=True)
class AliasLog:
    """Where one alias keeps its moves: the names of its events, leases, attempts, records
    and version tags. Two logs never share a sequence number space."""

    alias: str
    event_prefix: str  # model tag of each move: <prefix><seq>
    lease_infix: str  # registered model leasing move <seq>: <model><infix><seq>
    attempt_prefix: str  # model tag of a refused attempt: <prefix><seq>.<nonce>
    artifact_root: str  # run artifacts of each signed record: <root>/<seq>/
    tag_prefix: str  # the version tags a move writes: <prefix>record, <prefix>sequence, ...
    actions: tuple[str, ...]
    what: str  # how messages name one move


CHAMPION_LOG = AliasLog(
    alias="champion",
    event_prefix=EVENT_TAG_PREFIX,
    lease_infix=".promotion.",
    attempt_prefix="champion_attempt.",
    artifact_root="champion",
    tag_prefix="promotion.",
    actions=ACTIONS,
    what="promotion",
)
CHALLENGER_LOG = AliasLog(
    alias="challenger",
    event_prefix="challenger_event.",
    lease_infix=".challenger.",
    attempt_prefix="challenger_attempt.",
    artifact_root="challenger",
    tag_prefix="challenger.",
    # hold: the gates held a new version back (it takes the alias); manual: by hand;
    # drop: the alias leaves the version (it was promoted, or dropped by hand).
    actions=("hold", "manual", "drop"),
    what="challenger move",
)


@dataclass(frozen=True)
class ChampionEvent:
    """One move of an alias: ``champion`` to ``version`` from ``previous``, by whom, when and
    why. In the challenger's log ``version`` is the version the move signs a record for: the
    new challenger, or for a ``drop`` the one that loses the alias."""

    seq: int
    version: str
    previous: str | None
    action: str
    who: str
    when: str
    why: str
    nonce: str
    # The signed promotion record's artifact folder and key (empty: unsigned; events written
    # before these fields existed have neither): what recovery writes on the version.
    record: str = ""
    key_id: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ChampionEvent:
        data = json.loads(text)
        return cls(
            seq=int(data["seq"]),
            version=str(data["version"]),
            previous=None if data.get("previous") in (None, "") else str(data["previous"]),
            action=str(data["action"]),
            who=str(data.get("who", "")),
            when=str(data.get("when", "")),
            why=str(data.get("why", "")),
            nonce=str(data.get("nonce", "")),
            record=str(data.get("record", "")),
            key_id=str(data.get("key_id", "")),
        )


def now_iso() -> str:
    """UTC now as ``2026-12-01T23:59:59Z``."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def actor(env: Mapping[str, str] | None = None) -> str:
    """Who is acting: the CI actor when running in CI, else the OS user.

    ``HOUSING_ACTOR`` overrides; GitHub Actions gives ``GITHUB_ACTOR``; other CIs set ``CI``
    with ``GITLAB_USER_LOGIN`` or ``BUILD_REQUESTEDFOR`` when known.
    """
    env = os.environ if env is None else env
    if env.get("HOUSING_ACTOR"):
        return env["HOUSING_ACTOR"]
    if env.get("GITHUB_ACTOR"):
        return f"github:{env['GITHUB_ACTOR']}"
    for key in ("GITLAB_USER_LOGIN", "BUILD_REQUESTEDFOR"):
        if env.get(key):
            return f"ci:{env[key]}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"ci:{user}" if env.get("CI") else user


def event_key(seq: int, log: AliasLog = CHAMPION_LOG) -> str:
    return f"{log.event_prefix}{seq:0{_SEQ_WIDTH}d}"


def events_from_tags(tags: Mapping[str, str], log: AliasLog = CHAMPION_LOG) -> list[ChampionEvent]:
    """Every parseable event of ``log`` in a registered model's tags, by sequence number."""
    events = []
    for key, value in tags.items():
        if not key.startswith(log.event_prefix):
            continue
        try:
            events.append(ChampionEvent.from_json(value))
        except (ValueError, KeyError, TypeError):
            logger.warning("model tag %s is not a %s event; ignored", key, log.alias)
    return sorted(events, key=lambda event: event.seq)


def legacy_history(tags: Mapping[str, str]) -> list[str]:
    """The pre-event-log ``champion_history`` JSON list, if any."""
    raw = tags.get(LEGACY_HISTORY_TAG)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except json.JSONDecodeError:
        logger.warning("model tag %s is not JSON; ignored", LEGACY_HISTORY_TAG)
        return []
    return [str(v) for v in history] if isinstance(history, list) else []


def champion_stack(
    events: Sequence[ChampionEvent], legacy: Sequence[str] = (), current: str | None = None
) -> list[str]:
    """Replay the log into the stack of champions, the current one last.

    Promotions push their version; a rollback pops down to its target (pushing it if it is
    not on the stack). If the alias was moved outside this package (``current`` differs from
    the top), the current version is pushed so a rollback returns to the last recorded one.
    """
    stack = list(legacy)
    for event in events:
        if event.action == "rollback":
            while stack and stack[-1] != event.version:
                stack.pop()
            if not stack:
                stack.append(event.version)
        elif not stack or stack[-1] != event.version:
            stack.append(event.version)
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)
    return stack


def read_events(
    client: MlflowClient, name: str, log: AliasLog = CHAMPION_LOG
) -> tuple[list[ChampionEvent], list[str]]:
    """The event log of ``log`` and (for the champion) the legacy history of model ``name``."""
    tags = dict(client.get_registered_model(name).tags or {})
    legacy = legacy_history(tags) if log == CHAMPION_LOG else []
    return events_from_tags(tags, log), legacy


def next_seq(client: MlflowClient, name: str, log: AliasLog = CHAMPION_LOG) -> int:
    """The sequence number the next event will get (read under the registry lock)."""
    events, _ = read_events(client, name, log)
    return events[-1].seq + 1 if events else 1


def append_event(
    client: MlflowClient,
    name: str,
    *,
    version: str,
    previous: str | None,
    action: str,
    who: str,
    why: str,
    seq: int | None = None,
    record: str = "",
    key_id: str = "",
    log: AliasLog = CHAMPION_LOG,
) -> ChampionEvent:
    """Append one event (number ``seq``, default the next), then re-read it to confirm it stuck.

    Raises RegistryError when another writer took the same sequence number (its nonce is the
    one stored): the caller holds the sequence's lease, so this means a writer that bypassed
    it, and the caller must not carry on as if the move were recorded.
    """
    if action not in log.actions:
        raise ValueError(f"unknown {log.alias} event action {action!r}")
    seq = next_seq(client, name, log) if seq is None else seq
    if event_key(seq, log) in (client.get_registered_model(name).tags or {}):
        raise RegistryError(
            f"{log.alias} event {seq} of {name!r} exists already: a writer bypassed the lease"
        )
    event = ChampionEvent(
        seq=seq,
        version=str(version),
        previous=previous,
        action=action,
        who=who,
        when=now_iso(),
        why=why,
        nonce=uuid.uuid4().hex,
        record=record,
        key_id=key_id,
    )
    key = event_key(seq, log)
    client.set_registered_model_tag(name, key, event.to_json())
    stored = (client.get_registered_model(name).tags or {}).get(key)
    try:
        confirmed = stored is not None and ChampionEvent.from_json(stored).nonce == event.nonce
    except (ValueError, KeyError, TypeError):
        confirmed = False
    if not confirmed:
        raise RegistryError(
            f"{log.alias} event {seq} of {name!r} was overwritten by a concurrent writer; "
            "re-read the registry and retry"
        )
    return event
