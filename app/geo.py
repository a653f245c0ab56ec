"""The California map: training districts coloured by value, and the priced district on top."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pydeck as pdk

# Blue (cheap) -> yellow -> red (dear); three stops read well without a basemap.
_STOPS = np.array([[49, 54, 149], [254, 224, 144], [165, 0, 38]], dtype=float)
CALIFORNIA_VIEW = pdk.ViewState(latitude=37.2, longitude=-119.5, zoom=5.0, pitch=0)


def value_colours(values: Sequence[float]) -> list[list[int]]:
    """RGB colour per value on a blue-yellow-red ramp scaled to the values' own range."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return []
    low, high = float(array.min()), float(array.max())
    share = np.zeros_like(array) if high == low else (array - low) / (high - low)
    position = share * (len(_STOPS) - 1)
    left = np.clip(np.floor(position).astype(int), 0, len(_STOPS) - 2)
    weight = (position - left)[:, None]
    rgb = _STOPS[left] * (1 - weight) + _STOPS[left + 1] * weight
    return np.rint(rgb).astype(int).tolist()


def build_deck(
    latitude: float,
    longitude: float,
    context: Sequence[dict[str, float]] | None,
    *,
    price: float | None = None,
) -> pdk.Deck:
    """A basemap-free deck (no tiles are reachable offline): context layer plus the district."""
    layers = []
    if context:
        points = pd.DataFrame(context, columns=["longitude", "latitude", "value"])
        points["colour"] = value_colours(points["value"].tolist())
        layers.append(
            pdk.Layer(
                "ScatterplotLayer",
                data=points,
                id="training-districts",
                get_position=["longitude", "latitude"],
                get_fill_color="colour",
                get_radius=2500,
                radius_min_pixels=1.5,
                opacity=0.6,
                pickable=True,
            )
        )
    district = pd.DataFrame(
        [{"longitude": longitude, "latitude": latitude, "value": price or 0.0}],
    )
    layers.append(
        pdk.Layer(
            "ScatterplotLayer",
            data=district,
            id="district",
            get_position=["longitude", "latitude"],
            get_fill_color=[0, 200, 120],
            get_line_color=[0, 0, 0],
            stroked=True,
            line_width_min_pixels=2,
            get_radius=9000,
            radius_min_pixels=7,
            pickable=True,
        )
    )
    return pdk.Deck(
        layers=layers,
        initial_view_state=CALIFORNIA_VIEW,
        map_provider=None,
        map_style=None,
        tooltip={"text": "median value: {value}"},
    )
