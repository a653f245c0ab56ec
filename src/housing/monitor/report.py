"""The monitoring report a person reads: one self-contained HTML page from the summary.

Rendered from the same dictionary ``housing-monitor`` writes as ``summary.json``, so the page
and the JSON never disagree. No template engine and no script: tables, and per feature an
inline SVG of the reference's bin shares against the live ones.
"""

from __future__ import annotations

from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1d2430}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccd}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .7rem;text-align:right}
th{background:#eef1f6}td:first-child,th:first-child{text-align:left}
.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.muted{color:#667}
.verdict{padding:.6rem 1rem;border-radius:6px;display:inline-block;font-weight:600}
.verdict.bad{background:#fde7ea}.verdict.ok{background:#e6f4ea}
"""


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return escape(str(value))


def _bars(bins: list[dict[str, Any]], width: int = 260, height: int = 46) -> str:
    """Reference (grey) and live (blue) share of each bin, side by side."""
    n = len(bins)
    top = max([b["reference"] for b in bins] + [b["live"] for b in bins] + [1e-9])
    step = width / max(n, 1)
    rects = []
    for i, b in enumerate(bins):
        for j, (key, colour) in enumerate((("reference", "#9aa3b2"), ("live", "#2f6fd6"))):
            h = height * b[key] / top
            x = i * step + j * step / 2
            rects.append(
                f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{step / 2 - 1:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(b["bin"])}: {key} '
                f"{b[key]:.3f}</title></rect>"
            )
    return f'<svg width="{width}" height="{height}" role="img">{"".join(rects)}</svg>'


def _drift(drift: dict[str, Any]) -> str:
    rows = []
    entries = list(drift["features"].items())
    if drift.get("prediction"):
        entries.append(("predicted price", drift["prediction"]))
    for name, d in entries:
        mark = '<span class="bad">drifted</span>' if d["flagged"] and drift["enough_rows"] else ""
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{d['psi']:.3f}</td><td>{mark}</td>"
            f"<td>{_bars(d['bins'])}</td></tr>"
        )
    note = (
        ""
        if drift["enough_rows"]
        else f'<p class="bad">Only {drift["rows"]} instances: fewer than {drift["min_rows"]}, '
        "so nothing is judged (their PSI is sampling noise).</p>"
    )
    return (
        f"<h2>Drift against the training data</h2>{note}"
        f'<p class="muted">PSI over the reference\'s bins; drifted above '
        f"{drift['threshold']}. Bars: training share (grey) and live share (blue) per bin.</p>"
        "<table><tr><th>feature</th><th>PSI</th><th></th><th>bins</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _refusals(refusals: dict[str, Any] | None) -> str:
    if not refusals:
        return ""
    rows = "".join(
        f"<tr><td>{escape(f)}</td><td>{n}</td><td>{share:.2%}</td></tr>"
        for f, (n, share) in sorted(
            ((f, (v["refused"], v["share"])) for f, v in refusals["by_field"].items()),
            key=lambda item: -item[1][0],
        )
    )
    return (
        f"<h2>Refused requests by field</h2><p class='muted'>{refusals['predict_requests']} "
        f"prediction requests at {escape(refusals['api'])}, since it started.</p>"
        "<table><tr><th>field</th><th>refused</th><th>share</th></tr>" + rows + "</table>"
    )


def _shadow(shadow: dict[str, Any] | None) -> str:
    if not shadow:
        return ""
    return (
        "<h2>Shadow challenger</h2><table>"
        f"<tr><td>challenger / champion</td><td>v{escape(str(shadow['challenger_version']))} / "
        f"v{escape(str(shadow['champion_version']))}</td></tr>"
        f"<tr><td>instances scored by both</td><td>{shadow['instances']}</td></tr>"
        f"<tr><td>mean absolute difference (USD)</td><td>{_num(shadow['mean_abs_diff'])}</td></tr>"
        f"<tr><td>mean relative difference</td><td>{shadow['mean_rel_diff']:.2%}</td></tr>"
        "<tr><td>challenger inside the champion's interval</td>"
        f"<td>{shadow['inside_interval_share']:.1%}</td></tr></table>"
    )


def _realised(realised: dict[str, Any] | None) -> str:
    if not realised:
        return ""
    test = realised["test"]

    def mark(band: dict[str, Any]) -> str:
        if band["flagged"]:
            return '<span class="bad">below its floor</span>'
        return "" if band["judged"] else "too few to judge"

    rows = "".join(
        f"<tr><td>{escape(b['band'])}</td><td>{b['n']}</td><td>{_num(b['rmse'])}</td>"
        f"<td>{b['coverage']:.1%}</td><td>{_num(b['test_coverage'])}</td><td>{mark(b)}</td></tr>"
        for b in realised["bands"]
    )
    return (
        f"<h2>Realised error ({realised['n']} labelled instances)</h2><table>"
        "<tr><th></th><th>realised</th><th>champion on its test split</th></tr>"
        f"<tr><td>RMSE (USD)</td><td>{_num(realised['rmse'])}</td>"
        f"<td>{_num(test['rmse'])}</td></tr>"
        f"<tr><td>MAE (USD)</td><td>{_num(realised['mae'])}</td><td>{_num(test['mae'])}</td></tr>"
        f"<tr><td>interval coverage (level {realised['level']:.0%})</td>"
        f"<td>{realised['coverage']:.1%}</td><td>{_num(test['coverage'])}</td></tr></table>"
        "<table><tr><th>true price band</th><th>n</th><th>RMSE</th><th>coverage</th>"
        "<th>test coverage</th><th></th></tr>" + rows + "</table>"
    )


def render(summary: dict[str, Any]) -> str:
    """The HTML page of a ``housing-monitor`` summary."""
    alerts = summary["alerts"]
    verdict = (
        f'<p class="verdict bad">{len(alerts)} alert(s): {escape("; ".join(alerts))}</p>'
        if alerts
        else '<p class="verdict ok">No alert.</p>'
    )
    window = summary.get("window") or {}
    versions = ", ".join(f"v{escape(str(v))}" for v in summary.get("model_versions", [])) or "—"
    head = (
        f"<p class='muted'>Feature log window {escape(str(window.get('start') or 'start'))} to "
        f"{escape(str(window.get('end') or 'now'))}: {summary.get('rows', 0)} instances, "
        f"model {versions}. Written {escape(summary['generated_at'])}.</p>"
    )
    parts = [
        _drift(summary["drift"]) if summary.get("drift") else "",
        _refusals(summary.get("refusals")),
        _shadow(summary.get("shadow")),
        _realised(summary.get("realised")),
    ]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Monitoring report</title><style>{_CSS}</style></head><body>"
        f"<h1>California housing API: monitoring report</h1>{verdict}{head}"
        + "".join(parts)
        + "</body></html>\n"
    )
