"""Read an MLflow registry kept in SQLite (``sqlite:///mlflow.db``) with the stdlib only.

MLflow's tables are read read-only (``file:...?mode=ro``): the alias row, the version's tags,
the run's ``artifact_uri``. Artifacts of a SQLite registry live on local disk (``file://`` or a
plain path, relative ones resolved against the working directory as MLflow does), so the
bundle is copied from there. A schema other than the one this was written against (a newer
MLflow) fails with a SourceError naming the missing table or column; a test pins the
assumptions against a registry created by the real MLflow.
"""

from __future__ import annotations

import shutil
import sqlite3
import urllib.parse
import urllib.request
from pathlib import Path

from serve.sources.base import NoAliasError, SourceError
from serve.sources.mlflow_common import BUNDLE_ARTIFACT_PATH, AliasTarget, wanted

_PREFIX = "sqlite:///"
_TIMEOUT_S = 5.0  # waiting on a writer's lock; reads never take long

# table -> columns this reader uses (checked once per connection, before any query)
REQUIRED_SCHEMA: dict[str, tuple[str, ...]] = {
    "registered_model_aliases": ("name", "alias", "version"),
    "model_versions": ("name", "version", "run_id", "status"),
    "model_version_tags": ("name", "version", "key", "value"),
    "runs": ("run_uuid", "artifact_uri", "lifecycle_stage"),
}
_WORKSPACED = ("registered_model_aliases", "model_versions", "model_version_tags")
DEFAULT_WORKSPACE = "default"


def database_path(uri: str) -> Path:
    """The database file of a ``sqlite:///`` URI (relative to the working dir, or absolute)."""
    if not uri.startswith(_PREFIX):
        raise SourceError(f"not a sqlite:/// tracking URI: {uri}")
    raw = urllib.parse.unquote(uri[len(_PREFIX) :].split("?", 1)[0])
    if not raw or raw == ":memory:":
        raise SourceError(f"tracking URI {uri} names no database file")
    return Path(raw)


class SqliteRegistry:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.path = database_path(uri)

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise SourceError(f"no MLflow database at {self.path} (tracking URI {self.uri})")
        target = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro"
        try:
            conn = sqlite3.connect(target, uri=True, timeout=_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise SourceError(f"cannot open MLflow database {self.path}: {exc}") from None
        try:
            self._workspaced = _check_schema(conn, self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    def alias_target(self, name: str, alias: str) -> AliasTarget:
        """The version ``alias`` of ``name`` points at, its run and tags: three small queries."""
        conn = self._connect()
        try:
            ws, params = self._ws()
            row = conn.execute(
                f"SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?{ws}",
                (name, alias, *params),
            ).fetchone()
            if row is None:
                known = conn.execute(
                    f"SELECT 1 FROM model_versions WHERE name = ?{ws} LIMIT 1", (name, *params)
                ).fetchone()
                if known is None:
                    raise SourceError(f"no registered model named {name!r} in {self.path}")
                raise NoAliasError(f"model {name!r} has no version with alias {alias!r}")
            version = str(row[0])
            mv = conn.execute(
                f"SELECT run_id, status FROM model_versions WHERE name = ? AND version = ?{ws}",
                (name, version, *params),
            ).fetchone()
            if mv is None:
                raise SourceError(
                    f"alias {alias!r} points at missing version {version} of {name!r}"
                )
            run_id, status = mv
            if status and status != "READY":
                raise SourceError(f"{name} version {version} is {status}, not READY")
            tags = dict(
                conn.execute(
                    f"SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?{ws}",
                    (name, version, *params),
                ).fetchall()
            )
        except sqlite3.Error as exc:
            raise SourceError(f"reading MLflow database {self.path}: {exc}") from None
        finally:
            conn.close()
        if not run_id:
            raise SourceError(f"{name} version {version} has no run")
        return AliasTarget(
            name, alias, version, str(run_id), {str(k): str(v) for k, v in tags.items()}
        )

    def _ws(self) -> tuple[str, tuple[str, ...]]:
        return (" AND workspace = ?", (DEFAULT_WORKSPACE,)) if self._workspaced else ("", ())

    def run_artifact_dir(self, run_id: str) -> Path:
        """The run's artifact root on local disk."""
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT artifact_uri, lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise SourceError(f"reading MLflow database {self.path}: {exc}") from None
        finally:
            conn.close()
        if row is None:
            raise SourceError(f"run {run_id} not found in {self.path}")
        artifact_uri, stage = row
        if stage == "deleted":
            raise SourceError(f"run {run_id} is deleted")
        return local_artifact_path(str(artifact_uri or ""))

    def download_bundle(self, target: AliasTarget, dst: Path) -> Path:
        """Copy the run's ``bundle/`` (every file but the skops model) to ``dst``."""
        return self.download_dir(target, BUNDLE_ARTIFACT_PATH, dst, skip_skops=True)

    def download_dir(
        self, target: AliasTarget, root: str, dst: Path, *, skip_skops: bool = False
    ) -> Path:
        """Copy every file under the run's artifact folder ``root`` to ``dst``."""
        src = self.run_artifact_dir(target.run_id) / root
        if not src.is_dir():
            raise SourceError(
                f"{target.name} version {target.version}: no {root}/ artifacts at {src}"
            )
        copied = 0
        for path in sorted(src.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(src).as_posix()
            if skip_skops and not wanted(relative, target):
                continue
            out = dst / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            copied += 1
        if not copied:
            raise SourceError(f"{target.name} version {target.version}: {src} holds no files")
        return dst


def local_artifact_path(artifact_uri: str) -> Path:
    """A run artifact URI as a local path, the way MLflow's local artifact repository reads it:
    ``file:///abs`` or a plain path (relative to the working directory)."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file" and not parsed.netloc:
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "" and artifact_uri:
        return Path(urllib.request.url2pathname(artifact_uri))
    scheme = parsed.scheme or "(empty)"
    raise SourceError(
        f"run artifacts at a {scheme}: URI cannot be read without MLflow; serve this registry "
        "through `mlflow server` (an http:// tracking URI) instead"
    )


def _check_schema(conn: sqlite3.Connection, path: Path) -> bool:
    """Fail with one line naming what is missing; True when tables carry MLflow's workspace."""
    missing: list[str] = []
    workspaced = True
    try:
        for table, columns in REQUIRED_SCHEMA.items():
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if not have:
                missing.append(f"table {table}")
                continue
            missing.extend(f"{table}.{c}" for c in columns if c not in have)
            if table in _WORKSPACED and "workspace" not in have:
                workspaced = False
    except sqlite3.Error as exc:
        raise SourceError(f"{path} is not a readable MLflow database: {exc}") from None
    if missing:
        raise SourceError(
            f"{path} does not have the MLflow schema this API reads (missing: "
            f"{', '.join(missing)}); serve it through `mlflow server` (an http:// tracking URI)"
        )
    return workspaced
