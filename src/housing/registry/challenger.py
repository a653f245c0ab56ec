"""Moves of the ``challenger`` alias, each signed and recorded like a move of ``champion``.

The challenger is what the API may score in shadow, so it is verified the way the champion is:
every move signs a promotion record with ``alias="challenger"`` (``housing.registry.signed``),
logged as the version's run artifacts ``challenger/<seq>/`` and named by its
``challenger.record`` tag. A move is one of

- ``hold``: the gates held a new version back; it takes the alias (the one before loses it);
- ``manual``: ``housing-registry challenger VERSION`` gives it to a version by hand;
- ``drop``: the alias leaves its version, because that version was promoted to champion, a
  newer one was promoted over it, or by hand (``--drop``). The record says so
  (``action="drop"``) and no verifier serves it: pointing the alias back at a dropped version
  by hand is refused.

The challenger's moves have their own sequence, leases and event log (``CHALLENGER_LOG``:
``challenger_event.<seq>``, ``<model>.challenger.<seq>``), so they never advance the
champion's sequence, which the API's replay protection counts per key, registry and alias.
:func:`move_challenger` is the champion's crash-consistent sequence: lock, recover, lease,
sign, event (the commit point), then the version's ``challenger.*`` tags and the alias.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from housing.registry.history import (
    CHALLENGER_LOG,
    ChampionEvent,
    actor,
    append_event,
    read_events,
)
from housing.registry.lease import record_attempt, take_lease
from housing.registry.lookup import alias_version, get_version, require_model, version_info
from housing.registry.records import CHALLENGER, MODEL_NAME, RegistryError, VersionInfo
from housing.registry.signed import sign_promotion, signing_key
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

LOOKUP_KEY = object()  # a key argument's default: signing_key(), looked up when needed
HOLD, MANUAL, DROP = CHALLENGER_LOG.actions
TAG_PREFIX = CHALLENGER_LOG.tag_prefix  # challenger.record, challenger.sequence, ...


def event_tags(event: ChampionEvent) -> dict[str, str]:
    """The ``challenger.*`` tags a recorded move puts on its version, from the event alone."""
    return {
        f"{TAG_PREFIX}action": event.action,
        f"{TAG_PREFIX}reason": event.why,
        f"{TAG_PREFIX}at": event.when,
        f"{TAG_PREFIX}by": event.who,
        f"{TAG_PREFIX}previous": event.previous or "",
        f"{TAG_PREFIX}sequence": str(event.seq),
        f"{TAG_PREFIX}record": event.record,
        f"{TAG_PREFIX}signed": "true" if event.key_id else "false",
        f"{TAG_PREFIX}key_id": event.key_id,
    }


def _pending(client: MlflowClient, name: str, event: ChampionEvent) -> bool:
    now = alias_version(client, name, CHALLENGER)
    return now == event.version if event.action == DROP else now != event.version


def _finish(client: MlflowClient, name: str, event: ChampionEvent) -> None:
    """The steps after the commit point, each idempotent: the version's tags, then the alias."""
    for key, value in event_tags(event).items():
        client.set_model_version_tag(name, event.version, key, value)
    if event.action != DROP:
        client.set_registered_model_alias(name, CHALLENGER, event.version)
    elif alias_version(client, name, CHALLENGER) == event.version:
        client.delete_registered_model_alias(name, CHALLENGER)


def recover_challenger(client: MlflowClient, name: str) -> ChampionEvent | None:
    """Complete the last recorded challenger move if its mover was killed after the commit
    point (the event) and before the alias moved; return it, or None. Hold the registry lock."""
    events, _ = read_events(client, name, CHALLENGER_LOG)
    if not events or not _pending(client, name, events[-1]):
        return None
    last = events[-1]
    logger.warning(
        "%s: completing challenger move #%d (%s v%s by %s), interrupted before the alias moved",
        name,
        last.seq,
        last.action,
        last.version,
        last.who,
    )
    _finish(client, name, last)
    return last


def move_challenger(
    client: MlflowClient,
    uri: str,
    name: str,
    version: str,
    *,
    action: str,
    reason: str,
    who: str | None = None,
    key: SigningKey | object | None = LOOKUP_KEY,
) -> ChampionEvent:
    """Give ``challenger`` to ``version`` (``hold``, ``manual``) or take it off (``drop``).

    The steps, each safe to be killed after: take the registry lock and complete a move a
    killed mover recorded; lease the next challenger sequence number; sign the record and log
    it as ``challenger/<seq>/``; append ``challenger_event.<seq>`` (the commit point); write
    the version's ``challenger.*`` tags and move the alias. Killed before the event, the
    registry is as it was; after, the next move, registration, promotion or export completes
    it (:func:`recover_challenger`). Raises RegistryError with nothing changed when
    ``version`` already is (``hold``/``manual``) or is not (``drop``) the challenger, or
    another mover holds the sequence number. ``key`` defaults to
    :func:`~housing.registry.signed.signing_key`.
    """
    if action not in CHALLENGER_LOG.actions:
        raise ValueError(f"unknown challenger move {action!r}")
    who = who or actor()
    key = signing_key() if key is LOOKUP_KEY else key  # fails here, before anything moves
    with registry_lock(uri):
        recover_challenger(client, name)
        current = alias_version(client, name, CHALLENGER)
        if action == DROP and current != version:
            raise RegistryError(
                f"version {version} of {name!r} is not the challenger "
                f"({current or 'there is none'}); nothing changed"
            )
        if action != DROP and current == version:
            raise RegistryError(f"version {version} of {name!r} is already the challenger")
        lease = take_lease(
            client,
            name,
            target=version,
            who=who,
            exclusive=sqlite_path(uri) is not None,
            log=CHALLENGER_LOG,
        )
        now = alias_version(client, name, CHALLENGER)
        if now != current:  # another move finished between our read and our lease
            record_attempt(
                client,
                name,
                lease.seq,
                lease.nonce,
                who=who,
                target=version,
                holder=who,
                log=CHALLENGER_LOG,
            )
            raise RegistryError(
                f"challenger of {name!r} moved to {now or 'none'} while move #{lease.seq} was "
                "being leased; nothing changed"
            )
        signing = sign_promotion(
            client,
            name,
            version,
            seq=lease.seq,
            action=action,
            reason=reason,
            who=who,
            previous=current,
            key=key,  # type: ignore[arg-type]
            log=CHALLENGER_LOG,
        )
        event = append_event(
            client,
            name,
            seq=lease.seq,
            version=version,
            previous=current,
            action=action,
            who=who,
            why=reason,
            record=signing[f"{TAG_PREFIX}record"],
            key_id=signing[f"{TAG_PREFIX}key_id"],
            log=CHALLENGER_LOG,
        )
        _finish(client, name, event)
    logger.info(
        "%s: challenger move #%d: %s v%s by %s (%s)", name, event.seq, action, version, who, reason
    )
    return event


def drop_if_challenger(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    reason: str,
    who: str | None = None,
    key: SigningKey | object | None = LOOKUP_KEY,
) -> ChampionEvent | None:
    """Drop ``challenger`` if it names ``version`` (promoted to champion): a signed move.

    Called after a champion move's commit point, so it never fails that move: without a key
    (an export run without one) or on a refusal, it logs a warning and the next move,
    registration or export with a key drops it. None when there was nothing to drop.
    """
    if alias_version(client, name, CHALLENGER) != version:
        return None
    try:
        if key is LOOKUP_KEY:
            key = signing_key()
        return move_challenger(
            client,
            str(client.tracking_uri),
            name,
            version,
            action=DROP,
            reason=reason,
            who=who,
            key=key,
        )
    except RegistryError as exc:
        logger.warning(
            "%s: challenger still names v%s, now the champion; not dropped yet: %s",
            name,
            version,
            exc,
        )
        return None


def set_challenger(
    version: str,
    reason: str,
    model_name: str = MODEL_NAME,
    tracking_uri: str | None = None,
    *,
    who: str | None = None,
) -> VersionInfo:
    """Make ``version`` the challenger by hand (``housing-registry challenger``), signed."""
    why = _reason(reason)
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"setting {model_name}@{CHALLENGER} at {uri}"):
        client = make_client(uri)
        require_model(client, model_name, uri)
        target = str(get_version(client, model_name, str(version)).version)
        if alias_version(client, model_name, "champion") == target:
            raise RegistryError(
                f"version {target} of {model_name!r} is the champion; a challenger is another "
                "version"
            )
        move_challenger(client, uri, model_name, target, action=MANUAL, reason=why, who=who)
        return version_info(client, client.get_model_version(model_name, target))


def drop_challenger(
    reason: str,
    model_name: str = MODEL_NAME,
    tracking_uri: str | None = None,
    *,
    who: str | None = None,
) -> VersionInfo:
    """Take ``challenger`` off its version by hand (``housing-registry challenger --drop``)."""
    why = _reason(reason)
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"dropping {model_name}@{CHALLENGER} at {uri}"):
        client = make_client(uri)
        require_model(client, model_name, uri)
        with registry_lock(uri):
            recover_challenger(client, model_name)
            current = alias_version(client, model_name, CHALLENGER)
            if current is None:
                raise RegistryError(f"model {model_name!r} has no challenger to drop")
            move_challenger(client, uri, model_name, current, action=DROP, reason=why, who=who)
        return version_info(client, client.get_model_version(model_name, current))


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise RegistryError("a reason is required to move the challenger")
    return reason.strip()
