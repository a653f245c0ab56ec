"""The MLflow registry alias (models:/<name>@<alias>), read without importing MLflow.

``import mlflow`` costs ~5 s, so the serving process never imports it: an ``http(s)://``
tracking URI is read over MLflow's REST API (serve.sources.mlflow_rest), a ``sqlite:///`` one
straight from MLflow's tables (serve.sources.mlflow_sqlite). Either way the alias resolves to
a version whose ``promotion.record`` tag names the run's folder holding its signed promotion
record (``champion/<seq>/promotion.json`` + ``model.sig``); those and the run's ``bundle/``
files (all but the skops model) are fetched to a temp dir and verified like every champion
(serve/champion.py: signature, record, then the serving bundle's sha256s) before parsing.

The ``challenger`` alias is loaded the same way (``alias="challenger"``, or
:meth:`RegistrySource.challenger`): its version's ``challenger.record`` tag names
``challenger/<seq>/``, a record signed at the challenger's move with ``alias="challenger"`` and
the challenger's own sequence number; a record of a drop is refused. With no challenger,
loading raises :class:`~serve.sources.base.NoAliasError` ("no challenger"): the shadow idles.

Every message that leaves this module (SourceError, describe) is redacted: the tracking URI
may carry a password.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from housing.redact import redact, redact_uri, secrets_in
from serve.loaded_model import LoadedModel
from serve.sources.base import NoAliasError, SourceError
from serve.sources.mlflow_common import SERVING_SHA_TAG, SHA_TAG, AliasTarget, record_tag

if TYPE_CHECKING:
    from housing.signing import KeyRing

logger = logging.getLogger(__name__)
CHALLENGER = "challenger"
# The artifact folder a version's record tag may name, by alias (any other: the champion's).
_RECORD_ROOT = {CHALLENGER: "challenger"}


class RegistrySource:
    name = "registry"

    def __init__(
        self,
        tracking_uri: str,
        *,
        model_name: str,
        alias: str,
        context_limit: int,
        keys: KeyRing,
    ) -> None:
        self.keys = keys
        self.tracking_uri = tracking_uri.strip()
        self.model_name = model_name
        self.alias = alias
        self.context_limit = context_limit
        self._secrets = secrets_in(self.tracking_uri)
        scheme = self.tracking_uri.split(":", 1)[0].lower()
        self.via = {"http": "rest", "https": "rest", "sqlite": "sqlite"}.get(scheme, scheme)
        self._reader: Any = None

    @classmethod
    def challenger(
        cls, tracking_uri: str, *, model_name: str, context_limit: int, keys: KeyRing
    ) -> RegistrySource:
        """The registry's ``challenger``, verified like the champion (the shadow's source)."""
        return cls(
            tracking_uri,
            model_name=model_name,
            alias=CHALLENGER,
            context_limit=context_limit,
            keys=keys,
        )

    def describe(self) -> str:
        return (
            f"models:/{self.model_name}@{self.alias} at {redact_uri(self.tracking_uri)} "
            f"({self.via})"
        )

    @property
    def detail(self) -> str:
        """What GET /api/v1/model shows as ``source_detail``."""
        return f"registry ({self.via}): {self.describe()}"

    def _registry(self) -> Any:
        if self._reader is None:
            if self.via == "rest":
                from serve.sources.mlflow_rest import RestRegistry

                self._reader = RestRegistry(self.tracking_uri)
            elif self.via == "sqlite":
                from serve.sources.mlflow_sqlite import SqliteRegistry

                self._reader = SqliteRegistry(self.tracking_uri)
            else:
                raise SourceError(
                    f"unsupported tracking URI scheme {self.via!r} "
                    f"({redact_uri(self.tracking_uri)}): use http(s):// or sqlite:///"
                )
        return self._reader

    def _guarded(self, action: str, fn: Any) -> Any:
        """Run ``fn``; any failure becomes a one-line, redacted SourceError without a chain
        (a chained cause would print the raw text in a traceback)."""
        kind: type[SourceError] = SourceError
        try:
            return fn()
        except SourceError as exc:
            message, kind = str(exc), type(exc)
        except Exception as exc:  # a reader bug or an OS error: still one redacted line
            message = f"{action}: {type(exc).__name__}: {exc}"
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        secrets = (*self._secrets, *getattr(self._reader, "secrets", ()))
        raise kind(redact(lines[0] if lines else action, secrets)) from None

    def _target(self) -> AliasTarget:
        try:
            target = self._registry().alias_target(self.model_name, self.alias)
        except NoAliasError as exc:
            if self.alias != CHALLENGER:
                raise
            raise NoAliasError(f"no challenger: {exc}; the shadow stays idle") from None
        if not (target.tags.get(SERVING_SHA_TAG) or target.tags.get(SHA_TAG)):
            raise SourceError(
                f"{self.model_name} version {target.version} has no {SERVING_SHA_TAG} or "
                f"{SHA_TAG} tag; not registered by housing"
            )
        return target

    def fingerprint(self) -> str:
        """One alias lookup (plus its tags): cheap enough for a check every 30 s."""
        return self._guarded("reading the alias", lambda: self._target().fingerprint)

    def load(self, min_sequence: int | None = None) -> LoadedModel:
        return self._guarded("loading from the registry", lambda: self._load(min_sequence))

    def _load(self, min_sequence: int | None) -> LoadedModel:
        target = self._target()
        tag = record_tag(self.alias)
        folder = target.tags.get(tag)
        root = _RECORD_ROOT.get(self.alias, "champion")
        if folder and not re.fullmatch(rf"{root}/[0-9]{{6}}", folder):
            raise SourceError(f"refused: {tag} tag {folder[:40]!r} is not {root}/<seq>")
        if not folder:
            how = "made the challenger" if self.alias == CHALLENGER else "promoted"
            raise SourceError(
                f"refused: {target.name} version {target.version} (@{target.alias}) has no "
                f"{tag} tag: it was never {how} with a signed record"
            )
        tmp = Path(tempfile.mkdtemp(prefix="housing-serve-"))
        try:
            reader = self._registry()
            reader.download_bundle(target, tmp)
            for stale in ("promotion.json", "model.sig"):  # only the record's folder counts
                (tmp / stale).unlink(missing_ok=True)
            reader.download_dir(target, folder, tmp)
            return self._assemble(target, tmp, min_sequence)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _overrides(self, target: AliasTarget, meta: dict[str, Any]) -> dict[str, Any]:
        tags = target.tags
        extra = {"sha256": tags[SHA_TAG]} if tags.get(SHA_TAG) else {}  # the skops model's
        return extra | {
            "name": target.name,
            "version": target.version,
            "alias": target.alias,
            "run_id": target.run_id,
            "fingerprint": target.fingerprint,
            "metrics": target.metrics or _finite_metrics(meta),
            "git_commit": tags.get("git_commit") or meta.get("git_commit"),
            "data_md5": tags.get("data_md5") or meta.get("data_md5"),
            "source_detail": self.detail,
        }

    def _assemble(
        self, target: AliasTarget, directory: Path, min_sequence: int | None
    ) -> LoadedModel:
        import json

        from serve.champion import load_champion

        serving_sha = target.tags.get(SERVING_SHA_TAG)
        if not serving_sha:
            raise SourceError(
                f"{target.name} version {target.version} has no {SERVING_SHA_TAG} tag (registered "
                "before the serving bundle); register it again with the current pipeline"
            )
        import hashlib

        manifest = directory / "serving" / "manifest.json"
        if manifest.is_file() and hashlib.sha256(manifest.read_bytes()).hexdigest() != serving_sha:
            raise SourceError(
                f"{target.name} version {target.version}: its {SERVING_SHA_TAG} tag does not "
                "match the downloaded serving manifest's sha256; refusing an inconsistent version"
            )
        try:
            meta = json.loads((directory / "model.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SourceError(
                f"{target.name} version {target.version}: model.json: {exc}"
            ) from None
        try:
            model = load_champion(
                directory,
                keys=self.keys,
                expected={"name": target.name, "version": target.version, "alias": target.alias},
                min_sequence=min_sequence,
                source=self.name,
                default_name=self.model_name,
                identity_overrides=self._overrides(target, meta if isinstance(meta, dict) else {}),
                context_limit=self.context_limit,
            )
        except SourceError as exc:
            raise SourceError(f"{target.name} version {target.version}: {exc}") from None
        return model


def _finite_metrics(meta: dict[str, Any]) -> dict[str, float]:
    import math

    return {
        str(k): float(v)
        for k, v in (meta.get("metrics") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
