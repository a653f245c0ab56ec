"""What ``make pipeline`` did, in at most 15 lines: the end of the command, and reports/summary.md.

The pure functions take what was read (the ``dvc repro`` log, the register stage's metrics
and registration record, the exported champion) and return lines; :func:`main` reads the
files, prints the summary and writes it atomically. It reads files only (no MLflow, no DVC
API), so it takes a fraction of a second, and a file that is missing (a stage failed, or
never ran here) is named in the summary instead of stopping it.

    python -m housing.summary --repro-log reports/repro.log --out reports/summary.md
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from housing.io import read_json, read_yaml, write_text

logger = logging.getLogger(__name__)

MAX_LINES = 15
DVC_YAML = Path("dvc.yaml")
METRICS = Path("reports/register/metrics.json")
REGISTRATION = Path("reports/register/registration.json")
CHAMPION_DIR = Path("champion")
RECORD_FILE = "promotion.json"  # housing.signing.RECORD_FILE (not imported: it loads crypto)
SIGNATURE_FILE = "model.sig"  # housing.signing.SIGNATURE_FILE
# The register stage's metrics the summary quotes.
METRIC_KEYS = (
    "rmse",
    "rmse_ci95_low",
    "rmse_ci95_high",
    "r2",
    "n_test",
    "cv_rmse",
    "cv_rmse_std",
    "interval_level",
    "interval_coverage",
)
NEXT_COMMANDS = (
    ("make serve", "the API on http://127.0.0.1:8000, serving the champion"),
    ("dvc exp run --set-param sweep.n_trials=60", "an experiment from this commit"),
    ("dvc push", "data, features and models to the remote"),
)

# What `dvc repro` (and `dvc exp run`) print for each stage.
RAN, RESTORED, UNCHANGED, FAILED, NOT_RUN = "ran", "restored", "unchanged", "failed", "not run"
_STAGE_EVENTS = (
    (re.compile(r"Running stage '([^']+)'"), RAN),
    (re.compile(r"Stage '([^']+)' didn't change, skipping"), UNCHANGED),
    (re.compile(r"Stage '([^']+)' is cached - skipping run"), RESTORED),
)
_FAILED = re.compile(r"failed to reproduce(?: stages:)? ((?:'[^']+'(?:, | and )?)+)")
_QUOTED = re.compile(r"'([^']+)'")


@dataclass(frozen=True)
class Champion:
    """The champion exported to ``champion/``: its promotion record, and whether it is signed."""

    name: str
    version: str
    sequence: int | None
    signed: bool


def stage_statuses(log: str) -> dict[str, str]:
    """Each stage a ``dvc repro`` log names, with what happened to it, in the log's order.

    A stage that started and is named in DVC's final "failed to reproduce" error is failed.
    Lines may be glued to a progress bar's carriage returns, so events are searched for
    anywhere in a line.
    """
    statuses: dict[str, str] = {}
    for line in log.splitlines():
        for pattern, status in _STAGE_EVENTS:
            if match := pattern.search(line):
                statuses[match.group(1)] = status
        if match := _FAILED.search(line):
            for name in _QUOTED.findall(match.group(1)):
                statuses[name] = FAILED
    return statuses


def stages_line(order: Sequence[str], statuses: Mapping[str, str]) -> str:
    """One line: the stages grouped by what happened, each group in pipeline order."""
    names = list(order) + [name for name in statuses if name not in order]
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(statuses.get(name, NOT_RUN), []).append(name)
    if not statuses:
        return "- Stages: the log names none (did `dvc repro` start?)"
    labels = (
        (FAILED, "FAILED"),
        (RAN, "ran"),
        (RESTORED, "restored from the run cache"),
        (UNCHANGED, "unchanged (skipped)"),
        (NOT_RUN, "not run"),
    )
    parts = [f"{label}: {', '.join(groups[key])}" for key, label in labels if key in groups]
    return "- Stages " + "; ".join(parts)


def _money(value: float) -> str:
    return f"{value:,.0f}"


def metrics_lines(metrics: Mapping[str, Any], *, current: bool = True) -> list[str]:
    """Test RMSE and R², the honest CV score and the interval coverage (register's metrics);
    not ``current``: the file predates this run (register failed or was not reached)."""
    lines = [
        f"- Test split{'' if current else ' (an earlier run: register did not finish)'}: "
        f"RMSE {_money(metrics['rmse'])} (95 % CI "
        f"{_money(metrics['rmse_ci95_low'])}-{_money(metrics['rmse_ci95_high'])}), "
        f"R² {metrics['r2']:.3f}, {metrics['n_test']:,} districts"
    ]
    folds = len(metrics.get("cv_rmse_folds") or [])
    lines.append(
        f"- Honest CV RMSE {_money(metrics['cv_rmse'])} ± {_money(metrics['cv_rmse_std'])}"
        + (f" ({folds} folds of train)" if folds else "")
        + f"; {metrics['interval_level'] * 100:.0f} % interval coverage on test "
        f"{metrics['interval_coverage'] * 100:.1f} %"
    )
    return lines


def registration_line(registration: Mapping[str, Any], *, ran: bool) -> str:
    """This run's registration, or an earlier one's when register did not run."""
    name, version = registration["name"], registration["version"]
    when = "Registered" if ran else "Last registration (not this run's)"
    if registration.get("promoted"):
        return f"- {when}: {name} v{version}, promoted to champion"
    reason = str(registration.get("decision") or "").strip()
    return f"- {when}: {name} v{version}, held as challenger: {reason}"


def champion_line(champion: Champion | None, directory: Path = CHAMPION_DIR) -> str:
    """The champion in ``champion/`` (what ``make serve`` serves) and whether it is signed."""
    if champion is None:
        return f"- Champion: none in {directory}/ (the register stage has not exported one here)"
    promotion = f", promotion #{champion.sequence}" if champion.sequence is not None else ""
    signed = "signed" if champion.signed else "UNSIGNED (no signing key)"
    return f"- Champion: {champion.name} v{champion.version}{promotion}, {signed}, in {directory}/"


def summarize(
    *,
    order: Sequence[str],
    statuses: Mapping[str, str],
    metrics: Mapping[str, Any] | None,
    registration: Mapping[str, Any] | None,
    champion: Champion | None,
    missing: Sequence[str] = (),
    log_path: str = "",
    metrics_path: Path = METRICS,
) -> list[str]:
    """The summary's lines (at most :data:`MAX_LINES`), Markdown that reads as plain text."""
    title = "## Pipeline summary" + (f" (full log: {log_path})" if log_path else "")
    lines = [title, stages_line(order, statuses)]
    register = statuses.get("register", NOT_RUN)
    if metrics is not None:
        lines += metrics_lines(metrics, current=not statuses or register not in (FAILED, NOT_RUN))
    if registration is not None:
        lines.append(registration_line(registration, ran=register == RAN))
    lines.append(champion_line(champion))
    if missing:
        lines.append(f"- Missing or unreadable: {', '.join(missing)}")
    lines.append(
        f"- Reports: reports/<stage>/ (metrics: {metrics_path}); "
        "plots: `dvc plots show` writes dvc_plots/index.html"
    )
    lines.append("Next:")
    lines += [f"- `{command}`: {what}" for command, what in NEXT_COMMANDS]
    return lines


def _read(root: Path, path: Path, missing: list[str], reader: Any = read_json) -> Any:
    """The parsed file ``root / path``, or None with ``path`` added to ``missing``."""
    try:
        return reader(root / path)
    except FileNotFoundError:
        missing.append(str(path))
    except (OSError, ValueError) as exc:  # JSONDecodeError and YAMLError are ValueErrors
        logger.warning("cannot read %s: %s", root / path, exc)
        missing.append(f"{path} (unreadable)")
    return None


def read_champion(root: Path, missing: list[str]) -> Champion | None:
    """The record of the champion exported to ``champion/``; None if there is none."""
    if not (root / CHAMPION_DIR).is_dir():
        return None
    record = _read(root, CHAMPION_DIR / RECORD_FILE, missing)
    if not isinstance(record, Mapping):
        return None
    sequence = record.get("sequence")
    return Champion(
        name=str(record.get("name", "?")),
        version=str(record.get("version", "?")),
        sequence=sequence if isinstance(sequence, int) else None,
        signed=(root / CHAMPION_DIR / SIGNATURE_FILE).is_file(),
    )


def stage_order(root: Path, missing: list[str]) -> list[str]:
    """The stage names of ``dvc.yaml`` in the order it declares them."""
    data = _read(root, DVC_YAML, missing, reader=read_yaml)
    stages = data.get("stages") if isinstance(data, Mapping) else None
    return list(stages) if isinstance(stages, Mapping) else []


def build(repro_log: Path, root: Path = Path()) -> list[str]:
    """Read the log and the reports under ``root`` and return the summary's lines."""
    missing: list[str] = []
    try:
        log = repro_log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        log = ""
        missing.append(str(repro_log))
    order = stage_order(root, missing)
    metrics = _read(root, METRICS, missing)
    if metrics is not None:
        found = metrics if isinstance(metrics, Mapping) else {}
        absent = [key for key in METRIC_KEYS if not isinstance(found.get(key), int | float)]
        if absent:
            missing.append(f"{METRICS} (no {', '.join(absent)})")
            metrics = None
    registration = _read(root, REGISTRATION, missing)
    if registration is not None and not (
        isinstance(registration, Mapping) and {"name", "version"} <= set(registration)
    ):
        missing.append(f"{REGISTRATION} (no name or version)")
        registration = None
    return summarize(
        order=order,
        statuses=stage_statuses(log),
        metrics=metrics,
        registration=registration,
        champion=read_champion(root, missing),
        missing=missing,
        log_path=str(repro_log),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Print the summary of a ``dvc repro`` run and write it to ``--out``."""
    from housing import logs

    parser = argparse.ArgumentParser(prog="python -m housing.summary", description=__doc__)
    parser.add_argument("--repro-log", type=Path, required=True, help="dvc repro's output")
    parser.add_argument("--out", type=Path, help="also write the summary here (Markdown)")
    args = parser.parse_args(argv)
    logs.configure()
    text = "\n".join(build(args.repro_log)) + "\n"
    if args.out is not None:
        write_text(args.out, text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
