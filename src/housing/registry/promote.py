"""Moves of the ``champion`` alias: by the gates, by hand (promote) and back (rollback).

Every move goes through :func:`move_champion`, the one place that writes ``promotion.*``
version tags and appends a champion event. It is a guarded sequence:

1. take the registry lock (a file lock beside a SQLite database; nothing for a server);
2. re-read ``champion`` and refuse, changing nothing, if it is not the version the caller
   evaluated against (``expected_current``): a compare-and-swap the REST API lacks;
3. move the alias, write the version tags, append ``champion_event.<seq>`` and re-read both.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from housing.registry.history import (
    ChampionEvent,
    actor,
    append_event,
    champion_stack,
    next_seq,
    now_iso,
    read_events,
)
from housing.registry.lookup import (
    alias_version,
    get_version,
    require_model,
    version_info,
)
from housing.registry.records import CHALLENGER, CHAMPION, MODEL_NAME, RegistryError, VersionInfo
from housing.registry.signed import KEY_TAG, RECORD_TAG, SIGNED_TAG, sign_promotion, signing_key
from housing.registry.tracking import (
    check_reachable,
    make_client,
    one_line,
    registry_lock,
    resolve_tracking_uri,
    translated,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

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
    extra_tags: Mapping[str, str] | None = None,
) -> ChampionEvent:
    """Point ``champion`` at ``target`` if it still points at ``expected_current``.

    ``expected_current`` is the champion the decision was made against (None: there was
    none); omitted, the current champion is read under the lock. Raises RegistryError with
    nothing changed when the alias moved since, or when ``target`` is already champion.
    """
    who = who or actor()
    key = signing_key()  # a bad key fails here, before anything moves
    with registry_lock(uri):
        current = alias_version(client, name, CHAMPION)
        if expected_current is not _UNSET and current != expected_current:
            raise RegistryError(
                f"champion of {name!r} moved since evaluation (expected "
                f"{expected_current or 'none'}, found {current or 'none'}); nothing changed, "
                "re-evaluate against the new champion"
            )
        if current == target:
            raise RegistryError(f"version {target} of {name!r} is already the champion")
        was_challenger = alias_version(client, name, CHALLENGER) == target
        before = dict(client.get_model_version(name, target).tags or {})
        # Signed before anything moves: a failure here leaves the registry as it was (the
        # record logged under champion/<seq>/ is then never referenced by a tag).
        seq = next_seq(client, name)
        signing = sign_promotion(
            client,
            name,
            target,
            seq=seq,
            action=action,
            reason=reason,
            who=who,
            previous=current,
            key=key,
        )
        client.set_registered_model_alias(name, CHAMPION, target)
        try:
            if was_challenger:
                client.delete_registered_model_alias(name, CHALLENGER)
            event = append_event(
                client, name, version=target, previous=current, action=action, who=who, why=reason
            )
            tags = decision_tags(
                decision="promoted", mode=action, reason=reason, previous=current, who=who
            )
            # The event's seq is the promotion sequence number the signed record carries.
            tags[SEQUENCE_TAG] = str(event.seq)
            if event.seq != seq:
                raise RegistryError(
                    f"champion event of {name!r} got sequence {event.seq}, not the signed "
                    f"{seq}: a writer bypassed the lock"
                )
            tags |= signing
            tags = {**(extra_tags or {}), **tags}
            write_tags(client, name, target, tags)
        except Exception as exc:
            written = [
                *(extra_tags or {}),
                *decision_tags(decision="", mode="", reason="", previous=None, who=""),
                SEQUENCE_TAG,
                RECORD_TAG,
                SIGNED_TAG,
                KEY_TAG,
            ]
            _undo_move(client, name, target, current, was_challenger, before, written, exc)
            raise
        now = alias_version(client, name, CHAMPION)
        if now != target:
            raise RegistryError(
                f"champion of {name!r} is {now} right after moving it to {target}: a writer "
                f"bypassed the lock; event {event.seq} records the move to {target}"
            )
    logger.info("%s: champion %s -> %s by %s (%s: %s)", name, current, target, who, action, reason)
    return event


def _undo_move(
    client: MlflowClient,
    name: str,
    target: str,
    current: str | None,
    was_challenger: bool,
    before: Mapping[str, str],
    written: list[str],
    exc: BaseException,
) -> None:
    """Put ``champion`` (and ``challenger``) back after a failure that followed the move.

    Called under the registry lock, so nothing else moved the alias meanwhile. The target's
    ``promotion.*`` tags get their values from before the move back, so a half-written
    "promoted" does not survive.
    """
    logger.warning("moving champion of %s to %s failed (%s); restoring it", name, target, exc)
    try:
        if current is not None:
            client.set_registered_model_alias(name, CHAMPION, current)
        else:
            client.delete_registered_model_alias(name, CHAMPION)
        if was_challenger:
            client.set_registered_model_alias(name, CHALLENGER, target)
        for key in dict.fromkeys(written):
            if key in before:
                client.set_model_version_tag(name, target, key, before[key])
            else:
                with contextlib.suppress(Exception):  # never written: nothing to delete
                    client.delete_model_version_tag(name, target, key)
    except Exception as undo:
        raise RegistryError(
            f"moving champion of {name!r} to {target} failed ({one_line(exc)}) and restoring "
            f"it to {current or 'none'} failed too ({one_line(undo)}): check the aliases"
        ) from None


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
