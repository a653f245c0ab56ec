"""``housing-registry``: register, list versions, promote, roll back and show the registry.

A thin shell over the registry modules; every failure is one line on stderr and exit 1
(:mod:`housing.cli_errors`). Usage errors are Click's plain ones (the usage line, then
``Error: ...``, exit 2) rather than rich's boxed panel, which wraps one message over lines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from housing import cli_errors
from housing.registry.records import CHALLENGER, CHAMPION, MODEL_NAME, RegistryError, VersionInfo

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="housing-registry",
    help="Inspect and move the champion of the housing price model in the MLflow registry.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking/registry URI (default: sqlite:///mlflow.db in the working dir).",
        show_default=False,
    ),
]
ModelName = Annotated[str, typer.Option("--model-name", help="Registered model name.")]
Reason = Annotated[
    str, typer.Option("--reason", help="Why: recorded on the version.", show_default=False)
]

T = TypeVar("T")


@app.callback()
def _main() -> None:
    """Keep MLflow's INFO chatter off stderr so errors stay one line."""
    from housing.logs import configure

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # tqdm on stderr
    configure(os.environ.get("LOG_LEVEL", "WARNING"))


# MLflow retries a tracking server's 5xx answers 7 times with a growing backoff, a 120 s
# timeout each: a proxy answering 502 for a server that is down kept `list` waiting over 90 s.
# A person at a terminal gets the error in seconds; their own MLFLOW_HTTP_REQUEST_* win.
FAIL_FAST_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


@contextlib.contextmanager
def _fail_fast_http() -> Iterator[None]:
    """:data:`FAIL_FAST_HTTP` for the block, where the environment does not set them."""
    added = {key: value for key, value in FAIL_FAST_HTTP.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _run(action: Callable[[], T]) -> T:
    """Run ``action``; a RegistryError (or any failure) becomes one stderr line and exit 1.

    Anything else MLflow raises is named by its type too (the traceback is logged at DEBUG:
    ``LOG_LEVEL=DEBUG``), since the registry's backends fail in more ways than it translates.
    """
    try:
        with _fail_fast_http(), cli_errors.expected_errors(RegistryError):
            return action()
    except Exception as exc:
        logger.debug("unexpected failure", exc_info=True)
        cli_errors.fail(f"{type(exc).__name__}: {cli_errors.one_line(exc)}")


def _signed(info: VersionInfo, prefix: str = "promotion.", what: str = "promotion") -> str:
    seq = info.tags.get(f"{prefix}sequence", "?")
    if info.tags.get(f"{prefix}signed") == "true":
        return f"{what} #{seq} signed by key {info.tags.get(f'{prefix}key_id', '')[:12]}…"
    return f"{what} #{seq} UNSIGNED (HOUSING_ALLOW_UNSIGNED=1)"


def _fmt_float(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def _decision(info: VersionInfo) -> str:
    decision = info.tags.get("promotion.decision", "-")
    mode = info.tags.get("promotion.mode")
    return f"{decision} ({mode})" if mode else decision


def format_table(versions: Sequence[VersionInfo]) -> str:
    """Versions as an aligned plain-text table: version, aliases, rmse, r2, created, decision."""
    header = ("VERSION", "ALIASES", "RMSE", "R2", "CREATED", "DECISION")
    rows = [
        (
            info.version,
            ",".join(info.aliases) or "-",
            _fmt_float(info.metrics.get("rmse"), ",.0f"),
            _fmt_float(info.metrics.get("r2"), ".4f"),
            info.created_at or "-",
            _decision(info),
        )
        for info in versions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def format_version(info: VersionInfo, model_name: str) -> str:
    """One version as ``key: value`` lines for ``show``."""
    lines = [
        f"model:      {model_name}",
        f"version:    {info.version}",
        f"aliases:    {', '.join(info.aliases) or '-'}",
        f"run_id:     {info.run_id or '-'}",
        f"created:    {info.created_at or '-'}",
        f"sha256:     {info.tags.get('artifact_sha256', '-')}",
        f"git_commit: {info.tags.get('git_commit', '-')}",
        f"data_md5:   {info.tags.get('data_md5', '-')}",
        f"decision:   {_decision(info)}",
        f"by:         {info.tags.get('promotion.by', '-')}",
        f"reason:     {info.tags.get('promotion.reason', '-')}",
        f"gate:       {info.tags.get('gate.reason', '-')}",
        f"previous:   {info.tags.get('promotion.previous_champion') or '-'}",
        f"record:     {info.tags.get('promotion.record', '-')} (sequence "
        f"{info.tags.get('promotion.sequence', '-')}, signed: "
        f"{info.tags.get('promotion.signed', '-')})",
        "metrics:",
        *(f"  {key}: {value:.6g}" for key, value in sorted(info.metrics.items())),
    ]
    return "\n".join(lines)


@app.command("list")
def list_cmd(
    tracking_uri: TrackingUri = None,
    model_name: ModelName = MODEL_NAME,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the versions of the model, newest first."""
    from housing.registry.lookup import list_versions

    versions = _run(lambda: list_versions(model_name=model_name, tracking_uri=tracking_uri))
    if as_json:
        typer.echo(json.dumps([asdict(v) for v in versions], indent=2))
    else:
        typer.echo(format_table(versions))


@app.command("promote")
def promote_cmd(
    version: Annotated[str, typer.Argument(help="Version number to make the champion.")],
    reason: Reason,
    tracking_uri: TrackingUri = None,
    model_name: ModelName = MODEL_NAME,
    expect_champion: Annotated[
        str | None,
        typer.Option(
            "--expect-champion",
            help="Refuse unless the champion is still this version (what you reviewed).",
        ),
    ] = None,
) -> None:
    """Point the champion alias at VERSION, recording who, why and the previous champion."""
    from housing.registry.promote import promote

    guard = {} if expect_champion is None else {"expected_current": expect_champion}
    info = _run(
        lambda: promote(version, reason, model_name=model_name, tracking_uri=tracking_uri, **guard)
    )
    previous = info.tags.get("promotion.previous_champion") or "none"
    typer.echo(
        f"champion of {model_name} is now version {info.version} (was {previous}); {_signed(info)}"
    )


@app.command("rollback")
def rollback_cmd(
    reason: Reason,
    tracking_uri: TrackingUri = None,
    model_name: ModelName = MODEL_NAME,
) -> None:
    """Move the champion alias back to the previous champion."""
    from housing.registry.promote import rollback

    info = _run(lambda: rollback(reason, model_name=model_name, tracking_uri=tracking_uri))
    previous = info.tags.get("promotion.previous_champion") or "none"
    typer.echo(
        f"champion of {model_name} rolled back to version {info.version} (was {previous}); "
        f"{_signed(info)}"
    )


def format_history(
    events: Sequence[object], attempts: Sequence[dict], alias: str = CHAMPION
) -> str:
    """An alias's moves and the refused attempts, oldest first, one line each."""
    rows: list[tuple[int, int, str]] = []
    for event in events:
        signed = f"signed {event.key_id[:12]}…" if event.key_id else "unsigned"
        before = f"v{event.previous}" if event.previous else "-"
        after = "-" if event.action == "drop" else f"v{event.version}"
        rows.append(
            (
                event.seq,
                0,
                f"#{event.seq:<4} {event.when}  {before} -> {after}  "
                f"{event.action} by {event.who} ({signed}): {event.why}",
            )
        )
    for attempt in attempts:
        rows.append(
            (
                int(attempt.get("seq", 0)),
                1,
                f"#{attempt.get('seq', '?'):<4} {attempt.get('when', '')}  -> "
                f"v{attempt.get('version', '?')}  by {attempt.get('who', '?')}: "
                f"{attempt.get('outcome', 'refused')}",
            )
        )
    return "\n".join(line for *_, line in sorted(rows)) or f"no {alias} moves recorded"


def _log(alias: str):
    from housing.registry.history import CHALLENGER_LOG, CHAMPION_LOG

    logs = {CHAMPION: CHAMPION_LOG, CHALLENGER: CHALLENGER_LOG}
    if alias not in logs:
        cli_errors.fail(f"--alias must be {CHAMPION} or {CHALLENGER}, not {alias!r}")
    return logs[alias]


@app.command("history")
def history_cmd(
    tracking_uri: TrackingUri = None,
    model_name: ModelName = MODEL_NAME,
    alias: Annotated[
        str, typer.Option("--alias", help="Whose moves: champion or challenger.")
    ] = CHAMPION,
) -> None:
    """Every move of an alias (and every refused concurrent attempt), oldest first."""
    from housing.registry.history import read_events
    from housing.registry.lease import attempts_from_tags
    from housing.registry.lookup import require_model
    from housing.registry.tracking import (
        check_reachable,
        make_client,
        resolve_tracking_uri,
        translated,
    )

    log = _log(alias)

    def action() -> str:
        uri = resolve_tracking_uri(tracking_uri)
        check_reachable(uri, must_exist=True)
        with translated(f"reading the history of {model_name} at {uri}"):
            client = make_client(uri)
            require_model(client, model_name, uri)
            events, _ = read_events(client, model_name, log)
            tags = dict(client.get_registered_model(model_name).tags or {})
            return format_history(events, attempts_from_tags(tags, log), alias)

    typer.echo(_run(action))


def format_record(info: VersionInfo, check: object | None, problem: str = "") -> str:
    """The challenger's signed record (a ``signed.RecordCheck``) as ``show`` prints it."""
    if check is None:
        return f"challenger record: none ({problem})"
    record = check.record
    head = f"challenger record: {check.folder}"
    if record is None:
        return f"{head}\n  verified:   {check.detail}"
    mode = record.extra.get("mode", "")
    previous = record.extra.get("previous_challenger") or "-"
    key = "UNSIGNED"
    if check.signed:
        key = f"signed by key {info.tags.get('challenger.key_id', '?')[:12]}…"
    return "\n".join(
        [
            f"{head} (challenger move #{record.sequence}, {record.action}"
            f"{f' ({mode})' if mode else ''})",
            f"  record:     {record.name} version {record.version} as {record.alias!r}; {key}",
            f"  verified:   {check.detail}",
            f"  by:         {record.who} at {record.timestamp}",
            f"  reason:     {record.decision}",
            f"  previous:   {previous}",
        ]
    )


@app.command("show")
def show_cmd(
    alias: Annotated[str, typer.Option("--alias", help="Alias to show.")] = CHAMPION,
    tracking_uri: TrackingUri = None,
    model_name: ModelName = MODEL_NAME,
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence",
            help="housing-monitor's JSON summary with the shadow evidence (challenger only; "
            "default: monitoring/summary.json in the workspace).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show the version an alias points at: metrics, lineage tags and the last decision.

    For the challenger, also its signed record (verified when HOUSING_VERIFY_KEYS is set) and
    the shadow evidence for that version.
    """
    from housing.registry.lookup import version_for_alias

    info = _run(lambda: version_for_alias(alias, model_name=model_name, tracking_uri=tracking_uri))
    typer.echo(format_version(info, model_name))
    if alias != CHALLENGER:
        return
    from housing.registry.evidence import default_path, evidence_lines
    from housing.registry.signed import verify_alias

    try:
        with _fail_fast_http():
            check = verify_alias(
                info.version, CHALLENGER, model_name=model_name, tracking_uri=tracking_uri
            )
        typer.echo(format_record(info, check))
    except RegistryError as exc:
        typer.echo(format_record(info, None, cli_errors.one_line(exc)))
    path = evidence if evidence is not None else default_path()
    typer.echo("\n".join(evidence_lines(path, info.version)))


@app.command("challenger")
def challenger_cmd(
    reason: Reason,
    version: Annotated[
        str | None, typer.Argument(help="Version number to make the challenger.")
    ] = None,
    drop: Annotated[
        bool, typer.Option("--drop", help="Take the challenger alias off its version.")
    ] = False,
    tracking_uri: TrackingUri = None,
    model_name: ModelName = MODEL_NAME,
) -> None:
    """Point the challenger alias at VERSION (or --drop it), as a signed, recorded move."""
    from housing.registry.challenger import drop_challenger, set_challenger

    if drop == (version is not None):
        cli_errors.fail("give either VERSION or --drop")
    if drop:
        info = _run(lambda: drop_challenger(reason, model_name, tracking_uri))
        moved = f"challenger of {model_name} dropped from version {info.version}"
    else:
        info = _run(lambda: set_challenger(str(version), reason, model_name, tracking_uri))
        previous = info.tags.get("challenger.previous") or "none"
        moved = f"challenger of {model_name} is now version {info.version} (was {previous})"
    typer.echo(f"{moved}; {_signed(info, 'challenger.', 'challenger move')}")


def _register_settings(params_file: Path) -> dict:
    """The ``register`` section of params.yaml: gates, bootstrap size, seed, names."""
    from housing.io import read_yaml
    from housing.registry.gates import GateConfig

    if not params_file.is_file():
        raise RegistryError(f"no params file at {params_file}")
    section = (read_yaml(params_file) or {}).get("register")
    if not isinstance(section, dict) or "gates" not in section:
        raise RegistryError(f"{params_file} has no register.gates section")
    try:
        gates = GateConfig.from_mapping(
            section["gates"],
            n_resamples=int(section.get("bootstrap_resamples", 1000)),
            seed=int(section.get("seed", 42)),
        )
    except (TypeError, ValueError) as exc:
        raise RegistryError(str(exc)) from exc
    return {
        "gates": gates,
        "model_name": str(section.get("model_name", MODEL_NAME)),
        "experiment": str(section.get("experiment", "housing-price")),
    }


@app.command("register")
def register_cmd(
    tracking_uri: TrackingUri = None,
    bundle_dir: Annotated[
        Path, typer.Option("--bundle-dir", help="model.skops + model.json [+ serving/].")
    ] = Path("models"),
    test_split: Annotated[
        Path, typer.Option("--test-split", help="The test split the gate scores on.")
    ] = Path("data/split/test.parquet"),
    params_file: Annotated[
        Path, typer.Option("--params", help="params.yaml with the register section.")
    ] = Path("params.yaml"),
    promote_anyway: Annotated[
        bool,
        typer.Option("--promote", help="Promote whatever the gates say (needs --reason)."),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why --promote overrides the gates.")
    ] = None,
) -> None:
    """Register the committed model bundle without re-running the pipeline, then gate it."""
    if promote_anyway and not (reason and reason.strip()):
        cli_errors.fail("--promote needs --reason")
    if reason and not promote_anyway:
        cli_errors.fail("--reason is only for --promote (the gates give their own)")

    def action():
        from housing.registry.committed import register_committed

        settings = _register_settings(params_file)
        return register_committed(
            bundle_dir,
            test_split,
            tracking_uri=tracking_uri,
            promote_reason=reason if promote_anyway else None,
            plots=[
                Path("reports/register/predicted_vs_actual.csv"),
                Path("reports/register/residuals_by_band.csv"),
                Path("reports/register/feature_importance.csv"),
                Path("reports/register/metrics.json"),
            ],
            **settings,
        )

    reg = _run(action)
    verdict = "promoted to champion" if reg.promoted else "held as challenger"
    typer.echo(f"{reg.name} version {reg.version}: {verdict}. {reg.decision.reason}")


@app.command("export")
def export_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the champion to (replaced whole).")
    ] = Path("champion"),
    tracking_uri: TrackingUri = None,
    model_name: ModelName = MODEL_NAME,
) -> None:
    """Write the champion's signed directory (what the local and GCS sources serve) to OUT."""
    from housing.registry.signed import export_champion

    record = _run(lambda: export_champion(out, model_name=model_name, tracking_uri=tracking_uri))
    if record is None:
        cli_errors.fail(f"{model_name} has no champion; nothing exported")
    signed = "signed" if (out / "model.sig").is_file() else "UNSIGNED (no signing key)"
    typer.echo(
        f"{model_name} version {record.version} (promotion #{record.sequence}, {signed}) "
        f"written to {out}"
    )
