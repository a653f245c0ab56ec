"""Markdown report of what a change does to the pipeline: params, metrics and plots diffs.

Reads params.yaml and the metrics/plots files that dvc.yaml declares at two revisions straight
from Git (or the working tree), so it needs neither a DVC cache nor a remote and runs the same
locally and in CI:

    python scripts/pr_report.py --base origin/main              # base vs working tree
    python scripts/pr_report.py --base v1 --head v2 -o report.md

An unknown revision or a --repo that is not a directory is one line and exit status 2; a
dvc.yaml that is not YAML, or an output file that cannot be written, one line and exit 1.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from housing.cli_errors import one_line
from housing.io import write_text

logger = logging.getLogger(__name__)

WORKTREE = "workspace"
DEFAULT_PARAMS = "params.yaml"
TEXT_PLOT_SUFFIXES = {".csv", ".tsv", ".json", ".yaml", ".yml"}
MISSING = "—"


# ---------------------------------------------------------------- reading revisions


class RevisionError(RuntimeError):
    """A revision cannot be read (unknown ref, not a Git repository)."""


class ReportError(RuntimeError):
    """What a revision holds cannot be reported on (its dvc.yaml is not YAML)."""


@dataclass(frozen=True)
class Revision:
    """One side of the comparison: a Git revision, or the working tree when ``rev`` is None."""

    repo: Path
    rev: str | None

    @property
    def label(self) -> str:
        return self.rev if self.rev is not None else WORKTREE

    def read(self, path: str) -> str | None:
        """Text of ``path`` at this revision, or None when the file does not exist there."""
        if self.rev is None:
            file = self.repo / path
            return file.read_text(encoding="utf-8") if file.is_file() else None
        done = subprocess.run(
            ["git", "show", f"{self.rev}:{path}"],
            cwd=self.repo,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout if done.returncode == 0 else None

    def list_dir(self, path: str) -> list[str]:
        """Files under directory ``path`` at this revision (for directory plots)."""
        if self.rev is None:
            root = self.repo / path
            if not root.is_dir():
                return []
            return sorted(str(p.relative_to(self.repo)) for p in root.rglob("*") if p.is_file())
        done = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", self.rev, "--", path],
            cwd=self.repo,
            capture_output=True,
            text=True,
            check=False,
        )
        return sorted(done.stdout.split()) if done.returncode == 0 else []


def verify_revision(repo: Path, rev: str) -> None:
    """Fail early, with one line, when ``rev`` does not name a commit in ``repo``."""
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RevisionError(f"unknown revision {rev!r} in {repo}")


# ---------------------------------------------------------------- dvc.yaml inspection


def _out_paths(entries: Iterable[Any]) -> list[str]:
    """Paths of a dvc.yaml outs-like list (plain strings or one-key ``{path: options}`` maps)."""
    paths: list[str] = []
    for entry in entries or []:
        if isinstance(entry, str):
            paths.append(entry)
        elif isinstance(entry, Mapping):
            paths.extend(str(key) for key in entry)
    return paths


def _plot_paths(entries: Iterable[Any]) -> list[str]:
    """Data files of top-level plot definitions (``y: {file: column}`` or the id as a path)."""
    paths: list[str] = []
    for entry in entries or []:
        if isinstance(entry, str):
            paths.append(entry)
            continue
        if not isinstance(entry, Mapping):
            continue
        for plot_id, config in entry.items():
            y = config.get("y") if isinstance(config, Mapping) else None
            if isinstance(y, Mapping):
                paths.extend(str(file) for file in y)
            else:
                paths.append(str(plot_id))
    return paths


def declared_files(dvc_yaml: Mapping[str, Any]) -> dict[str, list[str]]:
    """Params files, metrics files and plot files declared by a parsed dvc.yaml."""
    params: list[str] = [DEFAULT_PARAMS]
    metrics: list[str] = _out_paths(dvc_yaml.get("metrics", []))
    plots: list[str] = _plot_paths(dvc_yaml.get("plots", []))
    for stage in (dvc_yaml.get("stages") or {}).values():
        if not isinstance(stage, Mapping):
            continue
        for entry in stage.get("params") or []:
            if isinstance(entry, Mapping):
                params.extend(str(file) for file in entry)
        metrics.extend(_out_paths(stage.get("metrics", [])))
        plots.extend(_out_paths(stage.get("plots", [])))
    return {
        "params": list(dict.fromkeys(params)),
        "metrics": list(dict.fromkeys(metrics)),
        "plots": list(dict.fromkeys(plots)),
    }


# ---------------------------------------------------------------- pure diffing


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys (``{"sweep": {"n_trials": 5}}`` -> ``{"sweep.n_trials": 5}``)."""
    if not isinstance(tree, Mapping):
        return {prefix: tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def parse_structured(path: str, text: str | None) -> dict[str, Any]:
    """Flattened content of a YAML/JSON params or metrics file; empty when absent or unreadable."""
    if text is None:
        return {}
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError):
        logger.warning("cannot parse %s; treated as empty", path)
        return {}
    return flatten(data or {})


@dataclass(frozen=True)
class ParamChange:
    path: str
    name: str
    base: Any
    head: Any


@dataclass(frozen=True)
class MetricChange:
    path: str
    name: str
    base: Any
    head: Any

    @property
    def delta(self) -> float | None:
        if _is_number(self.base) and _is_number(self.head):
            return float(self.head) - float(self.base)
        return None

    @property
    def pct(self) -> float | None:
        delta = self.delta
        if delta is None or float(self.base) == 0.0:
            return None
        return 100.0 * delta / abs(float(self.base))


_ABSENT = object()


def diff_params(path: str, base: Mapping[str, Any], head: Mapping[str, Any]) -> list[ParamChange]:
    """Params that were added, removed or changed, sorted by name."""
    rows = []
    for name in sorted(set(base) | set(head)):
        old, new = base.get(name, _ABSENT), head.get(name, _ABSENT)
        if old != new:
            rows.append(ParamChange(path, name, _none_if_absent(old), _none_if_absent(new)))
    return rows


def diff_metrics(
    path: str, base: Mapping[str, Any], head: Mapping[str, Any], *, include_unchanged: bool = True
) -> list[MetricChange]:
    """Every metric on either side (unchanged ones too, when asked), sorted by name."""
    rows = []
    for name in sorted(set(base) | set(head)):
        old, new = base.get(name, _ABSENT), head.get(name, _ABSENT)
        if old == new and not include_unchanged:
            continue
        rows.append(MetricChange(path, name, _none_if_absent(old), _none_if_absent(new)))
    return rows


def _none_if_absent(value: Any) -> Any:
    return None if value is _ABSENT else value


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass(frozen=True)
class PlotSummary:
    """A changed plot file summarised as text: row counts and per-column means."""

    path: str
    base_rows: int | None
    head_rows: int | None
    columns: list[tuple[str, float | None, float | None]]
    note: str = ""


def table_from_text(path: str, text: str | None) -> list[dict[str, Any]] | None:
    """Rows of a CSV/TSV/JSON/YAML plot file (DVC's accepted shapes); None when absent."""
    if text is None:
        return None
    suffix = Path(path).suffix.lower()
    if suffix in {".csv", ".tsv"}:
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        return list(reader)
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError):
        return []
    if isinstance(data, Mapping):  # DVC also accepts {"key": [rows...]}
        lists = [value for value in data.values() if isinstance(value, list)]
        data = lists[0] if lists else [data]
    return [row for row in data if isinstance(row, Mapping)] if isinstance(data, list) else []


def _column_means(rows: list[Mapping[str, Any]]) -> dict[str, float]:
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in rows:
        for column, raw in row.items():
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                sums[column] = sums.get(column, 0.0) + value
                counts[column] = counts.get(column, 0) + 1
    return {column: sums[column] / counts[column] for column in sums}


def summarize_plot(path: str, base_text: str | None, head_text: str | None) -> PlotSummary:
    """Text summary of one changed plot file (images are only named: no image host)."""
    if Path(path).suffix.lower() not in TEXT_PLOT_SUFFIXES:
        state = "added" if base_text is None else "removed" if head_text is None else "changed"
        return PlotSummary(path, None, None, [], note=f"image {state}; see the run's artifacts")
    base_rows, head_rows = table_from_text(path, base_text), table_from_text(path, head_text)
    base_means = _column_means(base_rows or [])
    head_means = _column_means(head_rows or [])
    columns = [
        (column, base_means.get(column), head_means.get(column))
        for column in dict.fromkeys([*base_means, *head_means])
    ]
    return PlotSummary(
        path,
        None if base_rows is None else len(base_rows),
        None if head_rows is None else len(head_rows),
        columns,
    )


# ---------------------------------------------------------------- rendering


def fmt(value: Any) -> str:
    """Compact, table-safe text for a value (6 significant digits for floats)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def fmt_signed(value: float | None, suffix: str = "") -> str:
    return MISSING if value is None else f"{value:+.6g}{suffix}"


def fmt_pct(value: float | None) -> str:
    return MISSING if value is None else f"{value:+.2f}%"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


@dataclass(frozen=True)
class Report:
    base: str
    head: str
    params: list[ParamChange]
    metrics: list[MetricChange]
    plots: list[PlotSummary]


def render(report: Report, title: str = "Pipeline report") -> str:
    """The pull-request comment body."""
    b, h = f"`{report.base}`", f"`{report.head}`"
    parts = [f"## {title}", "", f"Base {b} → head {h}.", "", "### Parameters", ""]
    if report.params:
        rows = [[c.path, c.name, fmt(c.base), fmt(c.head)] for c in report.params]
        parts.append(md_table(["Path", "Param", report.base, report.head], rows))
    else:
        parts.append("No parameter changed.")
    parts += ["", "### Metrics", ""]
    if report.metrics:
        rows = [
            [c.path, c.name, fmt(c.base), fmt(c.head), fmt_signed(c.delta), fmt_pct(c.pct)]
            for c in report.metrics
        ]
        header = ["Path", "Metric", report.base, report.head, "Change", "% change"]
        parts.append(md_table(header, rows))
    else:
        parts.append("No metric changed.")
    parts += ["", "### Plots that changed", ""]
    if not report.plots:
        parts.append("No plot data changed.")
    for plot in report.plots:
        if plot.note:
            parts += [f"- `{plot.path}`: {plot.note}"]
            continue
        parts += [
            f"#### `{plot.path}`",
            "",
            f"Rows: {fmt(plot.base_rows)} → {fmt(plot.head_rows)}.",
            "",
        ]
        if plot.columns:
            rows = [
                [
                    name,
                    fmt(old),
                    fmt(new),
                    fmt_signed(None if old is None or new is None else new - old),
                ]
                for name, old, new in plot.columns
            ]
            header = ["Column (mean)", report.base, report.head, "Change"]
            parts.append(md_table(header, rows))
        else:
            parts.append("No numeric columns.")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


# ---------------------------------------------------------------- assembling


def _load_dvc_yaml(revision: Revision) -> dict[str, Any]:
    text = revision.read("dvc.yaml")
    try:
        return (yaml.safe_load(text) or {}) if text else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or one_line(exc)
        raise ReportError(
            f"dvc.yaml{where} at {revision.label}: not valid YAML ({problem})"
        ) from None


def _expand_plot_paths(paths: Iterable[str], *revisions: Revision) -> list[str]:
    """Directory plots become the files under them at either revision."""
    files: list[str] = []
    for path in paths:
        listed = [f for rev in revisions for f in rev.list_dir(path)]
        files.extend(listed or [path])
    return list(dict.fromkeys(files))


def build_report(base: Revision, head: Revision, *, include_unchanged: bool = False) -> Report:
    """Compare the declared params, metrics and plots of two revisions.

    Like ``dvc metrics diff``, only metrics that changed are listed unless asked otherwise.
    """
    declared = {"params": [], "metrics": [], "plots": []}
    for revision in (base, head):
        for kind, paths in declared_files(_load_dvc_yaml(revision)).items():
            declared[kind] = list(dict.fromkeys([*declared[kind], *paths]))
    params: list[ParamChange] = []
    for path in declared["params"]:
        params += diff_params(
            path,
            parse_structured(path, base.read(path)),
            parse_structured(path, head.read(path)),
        )
    metrics: list[MetricChange] = []
    for path in declared["metrics"]:
        metrics += diff_metrics(
            path,
            parse_structured(path, base.read(path)),
            parse_structured(path, head.read(path)),
            include_unchanged=include_unchanged,
        )
    plots = []
    for path in _expand_plot_paths(declared["plots"], base, head):
        old, new = base.read(path), head.read(path)
        if old != new:
            plots.append(summarize_plot(path, old, new))
    return Report(base.label, head.label, params, metrics, plots)


def report_files(worktree: Revision) -> list[str]:
    """Existing files the report reads (params, metrics, plots), to hand between CI jobs."""
    declared = declared_files(_load_dvc_yaml(worktree))
    paths = ["dvc.yaml", "dvc.lock", *declared["params"], *declared["metrics"]]
    paths += _expand_plot_paths(declared["plots"], worktree)
    return [path for path in dict.fromkeys(paths) if (worktree.repo / path).is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="base revision (e.g. origin/main); required for a report")
    parser.add_argument("--head", default=None, help="head revision (default: working tree)")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    parser.add_argument("--title", default="Pipeline report", help="report heading")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.add_argument(
        "--all", action="store_true", help="list unchanged metrics too (default: changed only)"
    )
    parser.add_argument(
        "--list-files",
        action="store_true",
        help="print the working-tree files the report reads, one per line, and exit",
    )
    parser.add_argument(
        "--collect",
        type=Path,
        metavar="DIR",
        help="copy the working-tree files the report reads into DIR (same paths), and exit",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.repo.is_dir():
        parser.error(f"--repo {args.repo}: not a directory")
    if args.list_files or args.collect:
        try:
            listed = report_files(Revision(args.repo, None))
        except ReportError as exc:
            logger.error("%s", exc)
            return 1
        if args.list_files:
            sys.stdout.write("".join(f"{path}\n" for path in listed))
            return 0
        for path in listed:
            dest = args.collect / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(args.repo / path, dest)
        logger.info("copied %d files the report reads to %s", len(listed), args.collect)
        return 0
    if args.base is None:
        parser.error("--base is required (or use --list-files)")
    try:
        for rev in (args.base, args.head):
            if rev is not None:
                verify_revision(args.repo, rev)
    except RevisionError as exc:
        logger.error("%s", exc)
        return 2
    try:
        report = build_report(
            Revision(args.repo, args.base),
            Revision(args.repo, args.head),
            include_unchanged=args.all,
        )
    except (ReportError, OSError) as exc:
        logger.error("%s", one_line(exc))
        return 1
    text = render(report, title=args.title)
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        write_text(args.output, text)
    except OSError as exc:
        logger.error("cannot write %s: %s", args.output, exc.strerror or one_line(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
