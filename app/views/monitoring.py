"""The Monitoring tab: what the API's own monitoring sees now (GET /api/v1/monitoring).

Drift of the last DRIFT_WINDOW instances per input against the training data, the shadow
challenger's agreement with the champion, and requests refused by field. docs/monitoring.md
says what each number means and which alert it feeds.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app.client import ApiClient, ApiRejectedError, ApiUnavailableError
from app.views.common import money


def drift_frame(drift: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {"feature": name, "psi": d["psi"], "drifted": d["drifted"]}
        for name, d in drift.get("features", {}).items()
    ]
    if drift.get("prediction"):
        p = drift["prediction"]
        rows.append({"feature": "predicted price", "psi": p["psi"], "drifted": p["drifted"]})
    return pd.DataFrame(rows, columns=["feature", "psi", "drifted"])


def render_monitoring(client: ApiClient) -> None:
    st.subheader("Monitoring")
    st.button("Refresh", key="monitoring_refresh")
    try:
        body = client.monitoring()
    except ApiRejectedError as exc:  # an API from before monitoring (404): not an outage
        st.info(f"This API reports no monitoring: {exc.message}.")
        return
    except ApiUnavailableError as exc:  # the page above already offers a retry
        st.warning(f"Monitoring is unavailable now: {exc.message} Refresh to try again.")
        return
    drift = body["drift"]
    st.markdown("#### Drift against the training data")
    if not drift["available"]:
        st.info("Drift is off: DRIFT_WINDOW is 0, or the served model carries no reference.")
    else:
        st.caption(
            f"The last {drift['instances']:,} of up to {drift['window']:,} scored instances; "
            f"an input drifted when its PSI exceeds {drift['threshold']} with at least "
            f"{drift['min_instances']:,} instances."
        )
        if not drift["enough"]:
            n = drift["instances"]
            st.warning(
                f"{n:,} instance{'' if n == 1 else 's'} so far: fewer than "
                f"{drift['min_instances']:,}, so nothing is judged yet."
            )
        frame = drift_frame(drift)
        flagged = frame.loc[frame["drifted"], "feature"].tolist()
        if flagged:
            st.error("Drifted: " + ", ".join(flagged))
        elif drift["enough"]:
            st.success("No input has drifted.")
        bars = (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                alt.X("psi:Q", title="PSI against the training data"),
                alt.Y("feature:N", sort="-x", title=None),
                color=alt.condition("datum.drifted", alt.value("#c62828"), alt.value("#2f6fd6")),
            )
        )
        rule = (
            alt.Chart(pd.DataFrame({"psi": [drift["threshold"]]}))
            .mark_rule(color="grey", strokeDash=[4, 4])
            .encode(x="psi:Q")
        )
        st.altair_chart(bars + rule)
        st.dataframe(frame, hide_index=True, key="monitoring_drift")

    st.markdown("#### Shadow challenger")
    shadow = body.get("shadow")
    if not shadow or not shadow.get("loaded"):
        st.info("No shadow challenger is scoring (SHADOW off, or the registry has none).")
    else:
        cols = st.columns(4)
        cols[0].metric("Challenger", f"v{shadow['challenger_version']}")
        cols[1].metric("Scored by both", f"{shadow['instances']:,}")
        cols[2].metric("Mean |difference|", money(shadow["mean_abs_diff"]))
        cols[3].metric("Inside the champion's interval", f"{shadow['inside_interval_share']:.1%}")

    st.markdown("#### Refused requests")
    refused = body.get("refused_by_field") or {}
    total = body.get("predict_requests", 0)
    if not refused:
        st.caption(f"None of {total:,} prediction requests was refused for a field.")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {"field": f, "refused": n, "share": n / total if total else 0.0}
                    for f, n in sorted(refused.items(), key=lambda kv: -kv[1])
                ]
            ),
            hide_index=True,
            key="monitoring_refused",
        )
