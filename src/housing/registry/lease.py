"""Promotion leases: the registry grants promotion number N to one caller only.

MLflow's REST API has no compare-and-set, and a team's promoters hold only REST credentials,
so nothing they can write is conditional: a tag or an alias is an upsert. One call is not:
creating a registered model fails with ``RESOURCE_ALREADY_EXISTS`` when the name is taken
(a unique key in every store, SQLite and PostgreSQL alike). Promotion N of model ``M`` is
therefore leased by creating the registered model ``M.promotion.<N>`` (six digits); only
its creator writes champion event N and moves the alias. The second caller's create fails:
it records its attempt as a ``champion_attempt.<N>.<nonce>`` tag on ``M`` and moves nothing.

A lease whose event never came (its holder was killed) is abandoned: under the registry's
file lock (SQLite: no one else can hold a lease meanwhile) at once, on a server once it is
older than ``HOUSING_PROMOTION_LEASE_TTL_S`` (default 600 s; a promotion takes seconds).
The next promoter then skips that number: sequence numbers may have gaps, never repeats.
Leases stay as the registry's record of who held each number.

The challenger's moves are leased the same way in a number space of their own
(``M.challenger.<N>``, ``challenger_attempt.<N>.<nonce>``; :data:`CHALLENGER_LOG`).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from housing.registry.history import CHAMPION_LOG, AliasLog, actor, now_iso, read_events
from housing.registry.records import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

LEASE_INFIX = CHAMPION_LOG.lease_infix
ATTEMPT_TAG_PREFIX = CHAMPION_LOG.attempt_prefix
LEASE_TTL_ENV = "HOUSING_PROMOTION_LEASE_TTL_S"
DEFAULT_LEASE_TTL_S = 600.0


@dataclass(frozen=True)
class Lease:
    """Promotion number ``seq`` of ``model``, granted to this caller (``nonce``)."""

    model: str
    seq: int
    nonce: str
    who: str


def lease_name(model: str, seq: int, log: AliasLog = CHAMPION_LOG) -> str:
    return f"{model}{log.lease_infix}{seq:06d}"


def lease_ttl_s(environ: dict[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    raw = env.get(LEASE_TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_LEASE_TTL_S
    try:
        ttl = float(raw)
    except ValueError:
        ttl = -1.0
    if not ttl > 0:
        raise RegistryError(f"{LEASE_TTL_ENV} must be a positive number of seconds, not {raw!r}")
    return ttl


def _already_exists(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_ALREADY_EXISTS"


def _abandoned(client: MlflowClient, name: str, *, exclusive: bool, ttl_s: float) -> bool:
    if exclusive:
        return True
    created_ms = client.get_registered_model(name).creation_timestamp or 0
    return time.time() - created_ms / 1000 > ttl_s


def take_lease(
    client: MlflowClient,
    model: str,
    *,
    target: str,
    who: str | None = None,
    exclusive: bool,
    ttl_s: float | None = None,
    log: AliasLog = CHAMPION_LOG,
) -> Lease:
    """Lease the next move number of ``log`` (default the champion's promotions) of ``model``
    to move the alias to (or, for a challenger drop, off) ``target``.

    ``exclusive``: the caller holds the registry's file lock, so a lease without its event
    was abandoned by a killed holder. Raises RegistryError, after recording the attempt,
    when another caller holds the number: nothing moved.
    """
    from mlflow.exceptions import MlflowException

    who = who or actor()
    ttl = lease_ttl_s() if ttl_s is None else ttl_s
    nonce = uuid.uuid4().hex
    events, _ = read_events(client, model, log)
    seq = events[-1].seq + 1 if events else 1
    while True:
        name = lease_name(model, seq, log)
        try:
            client.create_registered_model(
                name,
                tags={"lease.holder": who, "lease.nonce": nonce, "lease.target": str(target)},
                description=f"Lease of {log.what} #{seq} of {model} (housing.registry.lease).",
            )
            return Lease(model=model, seq=seq, nonce=nonce, who=who)
        except MlflowException as exc:
            if not _already_exists(exc):
                raise
        recorded = {event.seq for event in read_events(client, model, log)[0]}
        if seq not in recorded and _abandoned(client, name, exclusive=exclusive, ttl_s=ttl):
            logger.warning(
                "%s #%d of %s was leased and never recorded (a killed mover): skipped",
                log.what,
                seq,
                model,
            )
            seq += 1
            continue
        holder = dict(client.get_registered_model(name).tags or {}).get("lease.holder", "?")
        record_attempt(client, model, seq, nonce, who=who, target=target, holder=holder, log=log)
        raise RegistryError(
            f"{log.what} #{seq} of {model!r} was taken by {holder} at the same time; this "
            f"attempt (to version {target}) is recorded and nothing changed: re-evaluate "
            f"against the new {log.alias}"
        )


def record_attempt(
    client: MlflowClient,
    model: str,
    seq: int,
    nonce: str,
    *,
    who: str,
    target: str,
    holder: str,
    log: AliasLog = CHAMPION_LOG,
) -> None:
    """Keep a refused move in the model's history (``housing-registry history``)."""
    value = {
        "seq": seq,
        "version": str(target),
        "who": who,
        "when": now_iso(),
        "outcome": f"refused: {log.what} #{seq} was leased by {holder}",
    }
    client.set_registered_model_tag(
        model,
        f"{log.attempt_prefix}{seq:06d}.{nonce[:12]}",
        json.dumps(value, sort_keys=True, separators=(",", ":")),
    )


def attempts_from_tags(
    tags: dict[str, str], log: AliasLog = CHAMPION_LOG
) -> list[dict[str, object]]:
    """The refused attempts of ``log`` recorded in a registered model's tags, by sequence."""
    out = []
    for key, value in tags.items():
        if key.startswith(log.attempt_prefix):
            try:
                out.append(json.loads(value))
            except ValueError:
                logger.warning("model tag %s is not a promotion attempt; ignored", key)
    return sorted(out, key=lambda a: (int(a.get("seq", 0)), str(a.get("when", ""))))
