"""``housing-monitor``: the API's traffic against the training data, and prices against truth.

Reads a time window of the feature log (FEATURE_LOG_DIR of the API), compares it with the
champion's reference (``champion/serving/reference.json``) and writes ``summary.json`` and
``report.html`` to ``--out``. ``--labels FILE`` adds the realised error of the prices served
for instances whose true value is now known; ``--api URL`` adds the share of requests refused
by field. Thresholds: params.yaml's ``monitor`` section. Meant for a person and for a
scheduler alike:

- exit 0: nothing crossed a threshold;
- exit 1: an alert (a feature or the predictions drifted, realised coverage fell below its
  band's floor); the alerts are listed on stderr and in the outputs;
- exit 2: the check itself failed (a missing log or reference, a bad file or setting).

With ``WANDB_API_KEY`` set, the summary and the page are logged to a W&B run as well.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from housing import logs
from housing.cli_errors import fail, one_line

logger = logging.getLogger(__name__)

ALERT, ERROR = 1, 2
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _monitor_params(path: Path) -> Any:
    from housing.params.base import load
    from housing.params.monitor import MonitorParams

    return load("monitor", MonitorParams, path)


def _api_counts(api: str) -> dict[str, Any]:
    url = api.rstrip("/") + "/api/v1/monitoring"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise OSError(f"cannot read {url}: {getattr(exc, 'reason', exc)}") from None


def _test_metrics(champion: Path) -> tuple[dict[str, Any], float]:
    meta = json.loads((champion / "model.json").read_text())
    metrics = meta.get("metrics") or {}
    level = metrics.get("interval_level")
    if level is None:
        level = json.loads((champion / "serving" / "interval.json").read_text())["level"]
    return metrics, float(level)


def _log_wandb(summary: dict[str, Any], html: str) -> None:
    """Log to W&B when a key is set; a failure is a warning (the files are the record)."""
    if not os.environ.get("WANDB_API_KEY"):
        return
    try:
        import wandb

        run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "housing-monitoring"),
            job_type="monitor",
            config=summary["thresholds"],
        )
        values: dict[str, Any] = {"alerts": len(summary["alerts"]), "rows": summary["rows"]}
        drift = summary.get("drift") or {}
        values |= {f"psi/{k}": v["psi"] for k, v in drift.get("features", {}).items()}
        if drift.get("prediction"):
            values["psi/prediction"] = drift["prediction"]["psi"]
        if summary.get("realised"):
            values |= {f"realised/{k}": summary["realised"][k] for k in ("rmse", "mae", "coverage")}
        run.log({**values, "report": wandb.Html(html)})
        run.finish()
    except Exception as exc:  # W&B is an extra sink: never the verdict
        logger.warning("W&B logging failed: %s", one_line(exc))


def check(
    *,
    log_dir: Path,
    reference_path: Path | None,
    champion: Path,
    since: str | None,
    until: str | None,
    labels: Path | None,
    api: str | None,
    out: Path,
    params: Path,
    now: datetime,
) -> dict[str, Any]:
    """Run the check and write its outputs; returns the summary."""
    from housing.io import write_json, write_text
    from housing.monitor import check as core
    from housing.monitor.log import Window, parse_time, read_window
    from housing.monitor.report import render

    monitor = _monitor_params(params)
    start = parse_time(since, now=now) if since else None
    end = parse_time(until, now=now) if until else None
    if labels is not None and not log_dir.is_dir():
        window = Window(start=start, end=end)  # the labels carry their own prices
    else:
        window = read_window(log_dir, since=start, until=end)
    reference = None
    if reference_path is not None:
        reference = json.loads(reference_path.read_text())
    realised = None
    if labels is not None:
        import pandas as pd

        frame = pd.read_csv(labels)
        frame.columns = [str(c).strip() for c in frame.columns]
        y, price, low, high, unmatched, source = core.labelled_prices(frame, window.records)
        if len(y) == 0:
            raise ValueError(f"{labels}: no labelled row matches a price served ({source})")
        test_metrics, level = _test_metrics(champion)
        realised = core.realised_error(
            y,
            price,
            low,
            high,
            level=level,
            test_metrics=test_metrics,
            tolerance=monitor.coverage_tolerance,
            min_band=monitor.min_band_instances,
        )
        realised |= {"source": source, "unmatched": unmatched, "file": str(labels)}
    refusals = core.refusal_shares(_api_counts(api), api) if api else None
    iso = lambda t: None if t is None else t.isoformat(timespec="seconds")  # noqa: E731
    summary = core.summarise(
        reference=reference if window.records else None,
        records=window.records,
        window={"start": iso(start), "end": iso(end), "unreadable_lines": window.unreadable},
        monitor=monitor,
        generated_at=iso(now),
        realised=realised,
        refusals=refusals,
    )
    html = render(summary)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    write_text(out / "report.html", html)
    _log_wandb(summary, html)
    return summary


@app.command()
def main(
    log_dir: Annotated[
        Path, typer.Option(help="The API's feature log directory (its FEATURE_LOG_DIR).")
    ] = Path("monitoring/features"),
    reference: Annotated[
        Path | None,
        typer.Option(help="The training reference; default: the champion's."),
    ] = None,
    champion: Annotated[
        Path, typer.Option(help="The champion directory (test figures, reference).")
    ] = Path("champion"),
    since: Annotated[
        str | None, typer.Option(help="Window start: ISO time, or a duration back (24h).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Window end (excluded), same forms.")] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="CSV with median_house_value: the realised error of served prices."),
    ] = None,
    api: Annotated[
        str | None, typer.Option(help="The API's URL, for refused requests by field.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where summary.json and report.html go.")] = Path(
        "monitoring"
    ),
    params: Annotated[Path, typer.Option(help="The parameters file.")] = Path("params.yaml"),
) -> None:
    """Compare the API's traffic with the training data (and served prices with the truth)."""
    from housing.params.base import ParamsError

    ref = reference if reference is not None else champion / "serving" / "reference.json"
    use_reference = reference is not None or not (labels is not None and not log_dir.is_dir())
    try:
        if use_reference and not ref.is_file():
            raise FileNotFoundError(
                f"{ref}: no drift reference (export the champion: make pipeline, or dvc pull)"
            )
        summary = check(
            log_dir=log_dir,
            reference_path=ref if use_reference else None,
            champion=champion,
            since=since,
            until=until,
            labels=labels,
            api=api,
            out=out,
            params=params,
            now=datetime.now(UTC),
        )
    except ParamsError as exc:
        fail(exc.problems[0], ERROR)
    except (OSError, ValueError, KeyError) as exc:
        logger.debug("check failed", exc_info=True)
        fail(one_line(exc), ERROR)
    logger.info("wrote %s and %s", out / "summary.json", out / "report.html")
    for alert in summary["alerts"]:
        sys.stderr.write(f"alert: {alert}\n")
    if summary["alerts"]:
        raise typer.Exit(ALERT)
    logger.info("no alert: %d instances checked", summary["rows"])


def run() -> None:
    logs.configure()
    app()


if __name__ == "__main__":
    run()
