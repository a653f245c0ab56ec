"""Realised error of a batch whose upload carries the true values (``median_house_value``).

The same report as ``housing-monitor --labels`` (:func:`housing.monitor.realised.
realised_error`): RMSE, MAE and interval coverage, overall and by band of the true price,
beside the champion's test figures from GET /api/v1/model; a band below its floor is shown
as an alert. Plus predicted against actual, with the line where they agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app.batch import HIGH_COLUMN, LOW_COLUMN, PRICE_COLUMN
from app.settings import AppSettings
from app.views.common import money
from housing.monitor.realised import realised_error

TRUE_COLUMN = "median_house_value"


def true_column(frame: pd.DataFrame) -> str | None:
    """The upload's column of true values (case and spaces ignored), if it has one."""
    return next((c for c in frame.columns if str(c).strip().lower() == TRUE_COLUMN), None)


def realised_report(
    frame: pd.DataFrame, column: str, model: dict[str, Any], settings: AppSettings, level: float
) -> dict[str, Any] | None:
    """The report for the rows with a true value and an interval; None if there are none."""
    truth = pd.to_numeric(frame[column], errors="coerce")
    rows = frame[truth.notna() & frame[LOW_COLUMN].notna()]
    if rows.empty:
        return None
    return realised_error(
        truth[rows.index].to_numpy(float),
        rows[PRICE_COLUMN].to_numpy(float),
        rows[LOW_COLUMN].to_numpy(float),
        rows[HIGH_COLUMN].to_numpy(float),
        level=level,
        test_metrics=model.get("metrics") or {},
        tolerance=settings.coverage_tolerance,
        min_band=settings.min_band_instances,
    )


def show_realised(
    frame: pd.DataFrame, model: dict[str, Any], settings: AppSettings, levels: Sequence[float]
) -> None:
    column = true_column(frame)
    if column is None or not levels:
        return
    report = realised_report(frame, column, model, settings, float(levels[0]))
    st.subheader("Realised error: the prices against the true values")
    if report is None:
        st.info(f"`{column}` has no usable value: nothing to compare.")
        return
    test = report["test"]
    cols = st.columns(3)
    cols[0].metric(
        "Realised RMSE",
        money(report["rmse"]),
        help="Champion on its test split: " + (money(test["rmse"]) if test["rmse"] else "unknown"),
    )
    cols[1].metric("Realised MAE", money(report["mae"]))
    cols[2].metric(
        "Interval coverage",
        f"{report['coverage']:.1%}",
        help=f"Share of true values inside the {report['level']:.0%} interval.",
    )
    st.caption(
        f"{report['n']:,} labelled rows. Champion on its test split: RMSE "
        + (money(test["rmse"]) if test["rmse"] else "unknown")
        + ", coverage "
        + (f"{test['coverage']:.1%}" if test["coverage"] is not None else "unknown")
        + "."
    )
    if report["flagged"]:
        st.error(
            "Coverage below its floor in: " + ", ".join(report["flagged"]) + " (the champion's "
            f"test coverage in that band minus {report['tolerance']:.0%})."
        )
    bands = pd.DataFrame(report["bands"])[
        ["band", "n", "rmse", "coverage", "test_coverage", "floor", "flagged"]
    ]
    st.dataframe(bands, hide_index=True, key="realised_bands")
    points = pd.DataFrame(
        {
            "actual": pd.to_numeric(frame[column], errors="coerce"),
            "predicted": frame[PRICE_COLUMN],
        }
    ).dropna()
    top = float(max(points["actual"].max(), points["predicted"].max()))
    scatter = (
        alt.Chart(points.head(5000))
        .mark_circle(size=12, opacity=0.4)
        .encode(
            alt.X("actual:Q", title="True value (USD)"),
            alt.Y("predicted:Q", title="Predicted price (USD)"),
        )
    )
    diagonal = (
        alt.Chart(pd.DataFrame({"actual": [0.0, top], "predicted": [0.0, top]}))
        .mark_line(color="grey")
        .encode(x="actual:Q", y="predicted:Q")
    )
    st.altair_chart(scatter + diagonal)
