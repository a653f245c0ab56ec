"""Moves of the ``champion`` alias: by the gates, by hand (promote) and back (rollback).

Every move goes through :func:`move_champion`, the one place that writes ``promotion.*``
version tags and appends a champion event: a guarded, crash-consistent sequence (its
docstring lists the steps). The event is the commit point: written after the signed record
and before the alias moves, so a promoter killed at any step leaves either the registry as
it was or a move that the next one completes (:func:`recover`). On a tracking server, the
sequence number is leased (:mod:`housing.registry.lease`): two promoters at once cannot
both move the alias. When the promoted version was the challenger, the challenger is then
dropped by a signed move of its own (:mod:`housing.registry.challenger`), which recovery
completes too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from housing.registry.challenger import LOOKUP_KEY, drop_if_challenger, recover_challenger
from housing.registry.history import (
    ChampionEvent,
    actor,
    append_event,
    champion_stack,
    now_iso,
    read_events,
)
from housing.registry.lease import record_attempt, take_lease
from housing.registry.lookup import (
    alias_version,
    get_version,
    require_model,
    version_info,
)
from housing.registry.records import CHAMPION, MODEL_NAME, RegistryError, VersionInfo
from housing.registry.signed import KEY_TAG, RECORD_TAG, SIGNED_TAG, sign_promotion, signing_key
from housing.registry.tracking import (
    check_reachable,
    make_client,
    registry_lock,
    resolve_tracking_uri,
    sqlite_path,
    translated,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from housing.signing import SigningKey

logger = logging.getLogger(__name__)

_UNSET = object()
SEQUENCE_TAG = "promotion.sequence"


def decision_tags(
    *, decision: str, mode: str, reason: str, previous: str | None, who: str
) -> dict[str, str]:
    """The ``promotion.*`` tags of one decision (promoted or held), as written on a version."""
    return {
        "promotion.decision": decision,
        "promotion.mode": mode,
        "promotion.reason": reason,
        "promotion.at": now_iso(),
        "promotion.by": who,
        "promotion.previous_champion": previous or "",
    }


def write_tags(client: MlflowClient, name: str, version: str, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def event_tags(event: ChampionEvent) -> dict[str, str]:
    """The ``promotion.*`` tags a recorded move puts on its version: derived from the event
    alone, so a promotion killed after its commit point is completed with the same tags."""
    tags = decision_tags(
        decision="promoted",
        mode=event.action,
        reason=event.why,
        previous=event.previous,
        who=event.who,
    )
    tags["promotion.at"] = event.when
    tags[SEQUENCE_TAG] = str(event.seq)
    tags[RECORD_TAG] = event.record
    tags[SIGNED_TAG] = "true" if event.key_id else "false"
    tags[KEY_TAG] = event.key_id
    return tags


def _drop_challenger(
    client: MlflowClient, name: str, event: ChampionEvent, key: SigningKey | object | None
) -> None:
    """Step 6: the promoted version stops being the challenger (a signed challenger move)."""
    drop_if_challenger(
        client,
        name,
        event.version,
        reason=f"promoted to champion (promotion #{event.seq})",
        who=event.who,
        key=key,
    )


def _finish(
    client: MlflowClient, name: str, event: ChampionEvent, key: SigningKey | object | None
) -> None:
    """Steps 4 to 6 of a move, each idempotent: tags, alias, challenger."""
    write_tags(client, name, event.version, event_tags(event))
    client.set_registered_model_alias(name, CHAMPION, event.version)
    _drop_challenger(client, name, event, key)


def recover(
    client: MlflowClient, name: str, *, key: SigningKey | object | None = LOOKUP_KEY
) -> ChampionEvent | None:
    """Complete the last recorded moves of ``challenger`` and ``champion`` if their movers
    were killed after the commit point (the event) and before the alias moved; return the
    champion's, or None if none was pending. Call it holding the registry lock. ``key`` signs
    a challenger drop still due (default: looked up; without one the drop waits)."""
    recover_challenger(client, name)
    events, _ = read_events(client, name)
    if not events or not events[-1].record:  # none, or written before recovery existed
        return None
    last = events[-1]
    if alias_version(client, name, CHAMPION) == last.version:
        _drop_challenger(client, name, last, key)  # killed at step 6
        return None
    logger.warning(
        "%s: completing promotion #%d (champion -> v%s by %s), interrupted before the alias moved",
        name,
        last.seq,
        last.version,
        last.who,
    )
    _finish(client, name, last, key)
    return last


def recover_champion(uri: str, model_name: str = MODEL_NAME) -> ChampionEvent | None:
    """:func:`recover` under the registry lock, for callers that only read the champion."""
    with registry_lock(uri):
        client = make_client(uri)
        try:
            client.get_registered_model(model_name)
        except Exception:  # no such model yet: nothing to recover
            return None
        return recover(client, model_name)


def move_champion(
    client: MlflowClient,
    uri: str,
    name: str,
    target: str,
    *,
    expected_current: str | object | None = _UNSET,
    action: str,
    reason: str,
    who: str | None = None,
    key: SigningKey | object | None = LOOKUP_KEY,
) -> ChampionEvent:
    """Point ``champion`` at ``target`` if it still points at ``expected_current``.

    ``expected_current`` is the champion the decision was made against (None: there was
    none); omitted, the current champion is read under the lock. Raises RegistryError with
    nothing changed when the alias moved since, when another promoter holds the sequence
    number, or when ``target`` is already champion.

    The steps, each safe to be killed after:

    1. take the registry lock (SQLite) and complete a move a killed promoter recorded;
    2. lease the next sequence number (:mod:`housing.registry.lease`: the server grants it
       to one caller; the loser records its attempt and stops);
    3. sign the record and log it as ``champion/<seq>/`` artifacts (nothing refers to them
       yet);
    4. append ``champion_event.<seq>``: the commit point;
    5. write the version's ``promotion.*`` tags, then move the alias, then drop
       ``challenger`` if it named the target (a signed challenger move of its own).

    Killed before 4, the registry is as it was (an abandoned lease, unreferenced artifacts);
    killed after, the next move, export or registration completes 5 (:func:`recover`).
    ``key`` defaults to :func:`~housing.registry.signed.signing_key`.
    """
    who = who or actor()
    key = signing_key() if key is LOOKUP_KEY else key  # a missing or bad key fails here
    with registry_lock(uri):
        recover(client, name, key=key)
        current = alias_version(client, name, CHAMPION)
        if expected_current is not _UNSET and current != expected_current:
            raise RegistryError(
                f"champion of {name!r} moved since evaluation (expected "
                f"{expected_current or 'none'}, found {current or 'none'}); nothing changed, "
                "re-evaluate against the new champion"
            )
        if current == target:
            raise RegistryError(f"version {target} of {name!r} is already the champion")
        lease = take_lease(
            client, name, target=target, who=who, exclusive=sqlite_path(uri) is not None
        )
        now = alias_version(client, name, CHAMPION)
        if now != current:  # a promotion finished between our read and our lease
            record_attempt(client, name, lease.seq, lease.nonce, who=who, target=target, holder=who)
            raise RegistryError(
                f"champion of {name!r} moved to {now or 'none'} while promotion "
                f"#{lease.seq} was being leased; nothing changed, re-evaluate"
            )
        signing = sign_promotion(
            client,
            name,
            target,
            seq=lease.seq,
            action=action,
            reason=reason,
            who=who,
            previous=current,
            key=key,  # type: ignore[arg-type]
        )
        event = append_event(
            client,
            name,
            seq=lease.seq,
            version=target,
            previous=current,
            action=action,
            who=who,
            why=reason,
            record=signing[RECORD_TAG],
            key_id=signing[KEY_TAG],
        )
        _finish(client, name, event, key)
        now = alias_version(client, name, CHAMPION)
        if now != target:
            raise RegistryError(
                f"champion of {name!r} is {now} right after moving it to {target}: a writer "
                f"bypassed the lease; event {event.seq} records the move to {target}"
            )
    logger.info("%s: champion %s -> %s by %s (%s: %s)", name, current, target, who, action, reason)
    return event


def _reason(reason: str, what: str) -> str:
    if not reason or not reason.strip():
        raise RegistryError(f"a reason is required to {what}")
    return reason.strip()


def promote(
    version: str,
    reason: str,
    model_name: str = MODEL_NAME,
    tracking_uri: str | None = None,
    *,
    expected_current: str | object | None = _UNSET,
    who: str | None = None,
) -> VersionInfo:
    """Make ``version`` the champion by hand, recording the previous champion, who, when, why."""
    why = _reason(reason, "promote a version")
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"promoting {model_name} version {version} at {uri}"):
        client = make_client(uri)
        require_model(client, model_name, uri)
        target = str(get_version(client, model_name, str(version)).version)
        move_champion(
            client,
            uri,
            model_name,
            target,
            expected_current=expected_current,
            action="manual",
            reason=why,
            who=who,
        )
        return version_info(client, client.get_model_version(model_name, target))


def rollback_target(client: MlflowClient, name: str, current: str) -> str:
    """The champion before ``current``, replaying the event log; skips deleted versions."""
    events, legacy = read_events(client, name)
    stack = champion_stack(events, legacy, current)
    stack.pop()  # the current champion
    while stack:
        candidate = stack[-1]
        try:
            get_version(client, name, candidate)
        except RegistryError:
            logger.warning("version %s in the history no longer exists; skipped", candidate)
            stack.pop()
            continue
        if candidate != current:
            return candidate
        stack.pop()
    raise RegistryError(
        f"nothing to roll back to: {name!r} has no earlier champion than version {current}"
    )


def rollback(
    reason: str,
    model_name: str = MODEL_NAME,
    tracking_uri: str | None = None,
    *,
    who: str | None = None,
) -> VersionInfo:
    """Move ``champion`` back to the previous champion in the event log; repeatable."""
    why = _reason(reason, "roll back")
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"rolling back {model_name} at {uri}"):
        client = make_client(uri)
        require_model(client, model_name, uri)
        with registry_lock(uri):  # re-entrant: move_champion takes it again
            current = alias_version(client, model_name, CHAMPION)
            if current is None:
                raise RegistryError(f"model {model_name!r} has no champion to roll back from")
            target = rollback_target(client, model_name, current)
            move_champion(
                client,
                uri,
                model_name,
                target,
                expected_current=current,
                action="rollback",
                reason=why,
                who=who,
            )
            write_tags(
                client,
                model_name,
                current,
                {"rollback.at": now_iso(), "rollback.reason": why, "rollback.by": who or actor()},
            )
        return version_info(client, client.get_model_version(model_name, target))
