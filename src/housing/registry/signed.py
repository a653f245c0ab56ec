"""Signed champions in the registry: sign at every move of ``champion``, export the champion.

Every move of the alias (the gates, ``housing-registry promote``, ``rollback``) ends in
:func:`sign_promotion`: the target version's serving files (``bundle/model.json`` and
``bundle/serving/``) are downloaded, a promotion record is written for them (name, version,
alias, action, data md5, git commit, the decision, the event's sequence number, who, when)
and signed with the key from ``HOUSING_SIGNING_KEY``/``HOUSING_SIGNING_KEY_FILE``; the record
and the signature are logged as the run's artifacts ``champion/<seq>/promotion.json`` and
``champion/<seq>/model.sig``, and the version's ``promotion.record`` tag names that folder.
The booster is also compiled for this machine into the champion's ``compiled/`` (listed in
the signed record) and logged as ``champion/<seq>/compiled/``, unless
``HOUSING_COMPILE_PREDICTOR=0`` (or the machine has no gcc or treelite: then a warning, and
the API scores with LightGBM's model text).
The skops model is not in the champion directory (the API never reads it); its sha256 is in
the signed record (``extra.model_skops_sha256``), so it is authenticated too.

Every move of ``challenger`` is signed the same way (``housing.registry.challenger``): a record
with ``alias="challenger"`` and the challenger's own sequence number, logged as
``challenger/<seq>/`` and named by the version's ``challenger.record`` tag; a drop (the alias
taken off a version) is signed as a record with ``action="drop"``, which no verifier serves.

The key is found by :func:`signing_key`: the environment, else the workspace's development
key in ``.keys/``. A promotion without a key is refused unless ``HOUSING_ALLOW_UNSIGNED=1``;
then the record is written unsigned: verifiers with keys refuse it, verifiers without keys
serve it as ``"signed": false``.

:func:`export_champion` writes the registry's current champion as a directory (what the
local and GCS sources serve): ``model.json``, ``serving/``, ``promotion.json``, ``model.sig``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from housing.registry.history import CHAMPION_LOG, AliasLog
from housing.registry.lookup import BUNDLE_ARTIFACT_PATH, SHA_TAG, get_alias, get_version
from housing.registry.records import CHAMPION, MODEL_NAME, RegistryError
from housing.registry.tracking import (
    check_reachable,
    make_client,
    registry_identity,
    resolve_tracking_uri,
    translated,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from housing.signing import PromotionRecord, SigningKey

logger = logging.getLogger(__name__)

CHAMPION_ARTIFACT_PATH = "champion"  # run artifacts: champion/<seq>/{promotion.json,model.sig}
RECORD_TAG = "promotion.record"  # version tag: the artifact folder of its latest record
SIGNED_TAG = "promotion.signed"  # "true" / "false"
KEY_TAG = "promotion.key_id"
SERVING_FILES = ("model.json", "serving")  # what a champion directory holds besides the record
ALLOW_UNSIGNED_ENV = "HOUSING_ALLOW_UNSIGNED"  # 1: promote without a key (docs/signing.md)
# 0: do not compile the booster into the champion at promotion (docs/serving-bundle.md).
COMPILE_ENV = "HOUSING_COMPILE_PREDICTOR"
COMPILED_DIR = "compiled"  # housing.serving.compiled.COMPILED_DIR, without importing it
# An event's action -> the signed record's (hold: the challenger alias given to the version).
_RECORD_ACTIONS = {
    "gates": "promote",
    "manual": "promote",
    "rollback": "rollback",
    "hold": "promote",
    "drop": "drop",
}


def record_folder(seq: int, log: AliasLog = CHAMPION_LOG) -> str:
    return f"{log.artifact_root}/{seq:06d}"


def record_tag(alias: str) -> str:
    """The version tag naming the folder of its latest record for ``alias``."""
    return RECORD_TAG if alias == CHAMPION else f"{alias}.record"


def _flag(environ: Mapping[str, str] | None, name: str, *, default: bool) -> bool:
    """A 1/0 setting from the environment (``1``/``true``/``yes``, ``0``/``false``/``no``)."""
    env = os.environ if environ is None else environ
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise RegistryError(f"{name} must be 1 or 0, not {value!r}")


def unsigned_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``HOUSING_ALLOW_UNSIGNED`` allows promotions without a key (``1``/``true``)."""
    return _flag(environ, ALLOW_UNSIGNED_ENV, default=False)


def compile_at_promotion(environ: Mapping[str, str] | None = None) -> bool:
    """Whether promotion compiles the booster: on unless ``HOUSING_COMPILE_PREDICTOR=0``."""
    return _flag(environ, COMPILE_ENV, default=True)


def signing_key(environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """The promotion key, found the same way by the register stage and ``housing-registry``.

    1. ``HOUSING_SIGNING_KEY`` or ``HOUSING_SIGNING_KEY_FILE`` (a team's key, a CI secret);
    2. else the workspace's development key, ``.keys/signing-key.pem`` (``make install``
       creates it; from a ``dvc exp run --temp`` copy, the main workspace's);
    3. else None when ``HOUSING_ALLOW_UNSIGNED=1``, which also turns step 2 off;
    4. else a RegistryError: a promotion is never unsigned by accident.

    A bad key is a RegistryError naming where it came from, never what it holds.
    """
    from housing.signing import KeyConfigError, SigningKey, signing_key_from_env
    from housing.signing.keys import PRIVATE_KEY_FILE
    from housing.workspace import DEV_KEYS_DIR, workspace_root

    env = os.environ if environ is None else environ
    try:
        key = signing_key_from_env(env)
        if key is not None:
            return key
        if unsigned_allowed(env):
            return None
        dev = workspace_root() / DEV_KEYS_DIR / PRIVATE_KEY_FILE
        if dev.is_file():
            key = SigningKey.from_pem(dev.read_bytes(), where=f"the development key {dev}")
            shown = dev.relative_to(Path.cwd()) if dev.is_relative_to(Path.cwd()) else dev
            logger.info(
                "HOUSING_SIGNING_KEY is not set: signing with the development key %s", shown
            )
            return key
    except KeyConfigError as exc:
        raise RegistryError(str(exc)) from None
    except OSError as exc:
        raise RegistryError(f"cannot read the development key {dev}: {exc.strerror}") from None
    raise RegistryError(
        "no signing key: set HOUSING_SIGNING_KEY or HOUSING_SIGNING_KEY_FILE, run `make "
        f"install` (it creates the development key in {DEV_KEYS_DIR}/), or set "
        f"{ALLOW_UNSIGNED_ENV}=1 to promote unsigned"
    )


def _download_serving(client: MlflowClient, run_id: str, dst: Path) -> Path:
    """The run's ``bundle/`` files but the skops model (``model.json``, ``serving/``)."""
    root = dst / BUNDLE_ARTIFACT_PATH
    root.mkdir(parents=True)
    for entry in client.list_artifacts(run_id, BUNDLE_ARTIFACT_PATH):
        name = entry.path.rsplit("/", 1)[-1]
        if name in SERVING_FILES:
            got = client.download_artifacts(run_id, entry.path, dst_path=str(dst / ".get"))
            shutil.move(got, root / name)
    if not (root / "model.json").is_file():
        raise RegistryError(f"run {run_id} has no {BUNDLE_ARTIFACT_PATH}/model.json")
    return root


def sign_promotion(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    seq: int,
    action: str,
    reason: str,
    who: str,
    previous: str | None,
    key: SigningKey | None,
    log: AliasLog = CHAMPION_LOG,
) -> dict[str, str]:
    """Sign move ``seq`` of ``log``'s alias (default: the champion's promotions) for
    ``version``; log record + signature as ``<root>/<seq>/``; return the version's tags
    (``<prefix>record``, ``<prefix>signed``, ``<prefix>key_id``).

    Raises (and logs nothing to the registry) if the bundle cannot be fetched or signed:
    nothing refers to the artifacts until the move's event is appended.
    """
    from housing.signing import PromotionRecord, build_champion, now_utc

    mv = client.get_model_version(name, version)
    tags = dict(mv.tags or {})
    record = PromotionRecord(
        name=name,
        version=str(version),
        alias=log.alias,
        action=_RECORD_ACTIONS.get(action, "promote"),
        data_md5=tags.get("data_md5") or "unknown",
        git_commit=tags.get("git_commit") or "unknown",
        decision=reason,
        sequence=seq,
        timestamp=now_utc(),
        who=who,
        extra={
            "mode": action,
            f"previous_{log.alias}": previous or "",
            "run_id": str(mv.run_id),
            "model_skops_sha256": tags.get(SHA_TAG, ""),
            # Whose sequence this is: the API keeps its replay marks per registry.
            "registry": registry_identity(str(client.tracking_uri)),
        },
    )
    with tempfile.TemporaryDirectory(prefix="housing-sign-") as tmp:
        bundle = _download_serving(client, str(mv.run_id), Path(tmp) / "download")
        champion = Path(tmp) / "champion"
        present = [n for n in SERVING_FILES if (bundle / n).exists()]  # serving/ since format 2
        record = build_champion(
            bundle, champion, record, key, include=present, compiled=compile_at_promotion()
        )
        folder = record_folder(seq, log)
        files = [champion / "promotion.json"]
        if key is not None:
            files.append(champion / "model.sig")
        for path in files:
            client.log_artifact(str(mv.run_id), str(path), artifact_path=folder)
        # Built on this machine, so not in the run's bundle: kept with the record it is
        # signed in, and fetched from there with it (_fetch_signed, the registry source).
        if (champion / COMPILED_DIR).is_dir():
            client.log_artifacts(
                str(mv.run_id), str(champion / COMPILED_DIR), f"{folder}/{COMPILED_DIR}"
            )
    logger.info(
        "%s v%s: %s #%d %s (%s)",
        name,
        version,
        log.what,
        seq,
        f"signed by key {key.key_id[:12]}…"
        if key is not None
        else "UNSIGNED (HOUSING_ALLOW_UNSIGNED=1)",
        folder,
    )
    return {
        f"{log.tag_prefix}record": folder,
        f"{log.tag_prefix}signed": "true" if key is not None else "false",
        f"{log.tag_prefix}key_id": key.key_id if key is not None else "",
    }


def _atomic_dir(staging: Path, out: Path) -> None:
    from housing.io import replace_dir

    staging.chmod(0o755)
    replace_dir(staging, out)


def _fetch_signed(client: MlflowClient, name: str, version: str, alias: str, staging: Path) -> str:
    """Copy ``version``'s serving files and its latest ``alias`` record (``promotion.json``,
    ``model.sig``) into ``staging``: the directory a verifier checks. Returns the folder."""
    from housing.signing import RECORD_FILE, SIGNATURE_FILE

    mv = get_version(client, name, version)
    tag = record_tag(alias)
    folder = (mv.tags or {}).get(tag)
    if not folder:
        if alias == CHAMPION:
            why = "was never promoted with a record (promote or roll back to it to sign one)"
        else:
            why = f"never held {alias!r} with a signed record"
        raise RegistryError(f"{name} version {version} has no {tag} tag: it {why}")
    with tempfile.TemporaryDirectory(prefix="housing-export-") as tmp:
        bundle = _download_serving(client, str(mv.run_id), Path(tmp) / "bundle")
        for item in SERVING_FILES:
            src = bundle / item
            if src.is_dir():
                shutil.copytree(src, staging / item)
            elif src.is_file():
                shutil.copy2(src, staging / item)
        records = Path(client.download_artifacts(str(mv.run_id), folder, dst_path=tmp))
        for item in (RECORD_FILE, SIGNATURE_FILE):
            if (records / item).is_file():
                shutil.copy2(records / item, staging / item)
        if (records / COMPILED_DIR).is_dir():
            shutil.copytree(records / COMPILED_DIR, staging / COMPILED_DIR)
    return folder


def export_version(client: MlflowClient, name: str, version: str, out: Path) -> PromotionRecord:
    """Write ``version``'s champion directory (its latest signed record) to ``out``, atomically.

    The result is verified before it replaces ``out``: against the keys of
    ``HOUSING_VERIFY_KEYS``/``HOUSING_VERIFY_KEY_FILES`` when set, else for integrity.
    """
    from housing.signing import RECORD_FILE, KeyConfigError, KeyRing, SigningError, verify

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        folder = _fetch_signed(client, name, version, CHAMPION, staging)
        try:
            result = verify(
                staging,
                KeyRing.from_env(),
                expected={"name": name, "version": version, "alias": CHAMPION},
            )
        except (KeyConfigError, SigningError) as exc:
            raise RegistryError(f"{name} version {version}: refused: {exc}") from None
        if result.record is None:
            raise RegistryError(f"{name} version {version}: {folder} holds no {RECORD_FILE}")
        _atomic_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    from housing.signing import SIGNATURE_FILE

    logger.info(
        "exported %s v%s (promotion #%d, %s) to %s",
        name,
        version,
        result.record.sequence,
        (
            "signed, signature verified"
            if result.signed
            else "signed, not verified here (no HOUSING_VERIFY_KEYS)"
        )
        if (out / SIGNATURE_FILE).is_file()
        else "UNSIGNED",
        out,
    )
    return result.record


def export_champion(
    out: str | Path,
    model_name: str = MODEL_NAME,
    tracking_uri: str | None = None,
) -> PromotionRecord | None:
    """Write the registry's current champion to ``out``; None (``out`` untouched) if none.

    A promotion its promoter recorded but did not finish (killed) is completed first, so
    ``out`` gets the champion the history names.
    """
    from housing.registry.promote import recover_champion

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"exporting {model_name}@{CHAMPION} from {uri}"):
        recover_champion(uri, model_name)
        client = make_client(uri)
        mv = get_alias(client, model_name, CHAMPION)
        if mv is None:
            logger.warning("%s has no champion at %s: nothing exported", model_name, uri)
            return None
        return export_version(client, model_name, str(mv.version), Path(out))


@dataclass(frozen=True)
class RecordCheck:
    """A version's latest signed record for an alias, checked as the API checks it."""

    folder: str
    record: PromotionRecord | None  # as written (unauthenticated when not verified)
    signed: bool  # a model.sig is there
    verified: bool  # a key of HOUSING_VERIFY_KEYS verified signature and record
    detail: str  # one line: by which key, why not verified, or why refused


def check_record(client: MlflowClient, name: str, version: str, alias: str) -> RecordCheck:
    """Fetch ``version``'s latest ``alias`` record with its serving files and verify them the
    way the API does (signature, file digests, name/version/alias, not a drop) against
    ``HOUSING_VERIFY_KEYS``; a refusal is reported, not raised (``housing-registry show``)."""
    from housing.signing import (
        RECORD_FILE,
        SIGNATURE_FILE,
        KeyConfigError,
        KeyRing,
        PromotionRecord,
        SigningError,
        verify,
    )

    with tempfile.TemporaryDirectory(prefix="housing-check-") as tmp:
        staging = Path(tmp)
        folder = _fetch_signed(client, name, version, alias, staging)
        signed = (staging / SIGNATURE_FILE).is_file()
        try:
            record = PromotionRecord.from_bytes((staging / RECORD_FILE).read_bytes())
        except (OSError, SigningError):
            record = None
        try:
            keys = KeyRing.from_env()
            result = verify(
                staging, keys, expected={"name": name, "version": version, "alias": alias}
            )
        except (KeyConfigError, SigningError) as exc:
            return RecordCheck(folder, record, signed, False, f"REFUSED: {exc}")
    if result.signed:
        return RecordCheck(folder, result.record, signed, True, result.reason)
    why = "no HOUSING_VERIFY_KEYS set" if signed else "UNSIGNED (no key signed it)"
    return RecordCheck(folder, result.record or record, signed, False, f"not verified: {why}")


def verify_alias(
    version: str, alias: str, model_name: str = MODEL_NAME, tracking_uri: str | None = None
) -> RecordCheck:
    """:func:`check_record` for ``model_name`` version ``version`` at the tracking URI."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"checking the {alias} record of {model_name} version {version} at {uri}"):
        return check_record(make_client(uri), model_name, str(version), alias)


def promotion_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The signing tags of a version (for ``housing-registry show``)."""
    return {k: tags[k] for k in (RECORD_TAG, SIGNED_TAG, KEY_TAG) if k in tags}
