"""The data contract: which columns a district has, their types, ranges, rules and region.

The preprocess stage derives the contract from the training split and writes it as JSON;
the pipeline validates both splits against it and the API validates requests against the
same file, so bounds and categories are never copied by hand.

Every bound and rule lives here, and every check of numbers runs through one vectorised
function, :meth:`Contract.violations_array`: frames (the pipeline), request batches (the
API) and the app's form all get the same answer. Bounds come from two sources:

- domain limits, fixed by what the fields mean: a count (rooms, bedrooms, people,
  households) is at least 1, an age is at least 0, an income is above 0, a district lies in
  California (:data:`CALIFORNIA_OUTLINE` widened by a margin in km);
- the training data, for the upper bounds of counts, age and income: the observed maximum
  plus a share (``margin``) of the observed range, so plausible unseen districts pass.

Cross-field rules (:data:`CROSS_FIELD_RULES`) name districts that cannot exist, such as
more bedrooms than rooms; each must hold for every real district (a data test proves it).

Import-light on purpose: numpy only at module level (the API imports this module and must
not import pandas); pandas is imported inside the functions that take frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

TARGET = "median_house_value"
NUMERIC_FEATURES: tuple[str, ...] = (
    "longitude",
    "latitude",
    "housing_median_age",
    "total_rooms",
    "total_bedrooms",
    "population",
    "households",
    "median_income",
)
CATEGORICAL_FEATURE = "ocean_proximity"
RAW_FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, CATEGORICAL_FEATURE)
NULLABLE_FEATURES: frozenset[str] = frozenset({"total_bedrooms"})
COUNT_FEATURES: tuple[str, ...] = ("total_rooms", "total_bedrooms", "population", "households")
COORDINATES: tuple[str, str] = ("longitude", "latitude")
CONTRACT_VERSION = 2

# Domain lower bounds: (minimum, exclusive?, why). Upper bounds come from the data.
DOMAIN_MINIMUM: dict[str, tuple[float, bool, str]] = {
    "housing_median_age": (0.0, False, "an age cannot be negative (0: built this year)"),
    **{name: (1.0, False, "a count, at least 1 (no district is empty)") for name in COUNT_FEATURES},
    "median_income": (0.0, True, "an income must be positive"),
}

# Cross-field rules ``left <= right``: (left, right, why). Each must hold for every real
# district. Rejected candidates, each broken by real districts (see docs/pipeline.md):
# households <= population (3 districts), households <= total_rooms (2 districts).
CROSS_FIELD_RULES: tuple[tuple[str, str, str], ...] = (
    ("total_bedrooms", "total_rooms", "bedrooms are counted among the rooms"),
)

# A simplified outline of California as (longitude, latitude) vertices, clockwise from the
# Oregon border on the coast. Land borders follow their legal lines (42°N, 120°W down to
# Lake Tahoe, the oblique line to the Colorado River at 35°N, the river simplified, the
# 1848 line to the Pacific); the coast is drawn offshore around every coastal district and
# the Channel Islands with Santa Catalina (the ISLAND districts), so the Pacific a few tens
# of km out, Nevada, Arizona and Mexico lie outside.
CALIFORNIA_OUTLINE: tuple[tuple[float, float], ...] = (
    (-124.45, 42.00),
    (-120.00, 42.00),
    (-120.00, 39.00),
    (-114.6332, 35.0017),
    (-114.60, 34.95),
    (-114.54, 34.83),
    (-114.47, 34.72),
    (-114.43, 34.60),
    (-114.36, 34.47),
    (-114.13, 34.30),
    (-114.26, 34.15),
    (-114.43, 34.00),
    (-114.50, 33.80),
    (-114.52, 33.55),
    (-114.67, 33.42),
    (-114.62, 33.28),
    (-114.47, 33.00),
    (-114.46, 32.84),
    (-114.56, 32.73),
    (-114.7196, 32.7186),
    (-117.1236, 32.5343),
    (-117.38, 32.5146),
    (-117.38, 32.65),
    (-117.40, 32.85),
    (-117.45, 33.15),
    (-117.75, 33.40),
    (-118.20, 33.25),
    (-118.65, 33.25),
    (-118.70, 33.45),
    (-119.35, 33.90),
    (-120.00, 33.85),
    (-120.55, 34.10),
    (-120.65, 34.40),
    (-120.80, 34.60),
    (-120.95, 34.95),
    (-121.10, 35.30),
    (-121.50, 35.70),
    (-122.05, 36.30),
    (-122.10, 36.60),
    (-122.50, 37.05),
    (-122.65, 37.40),
    (-122.70, 37.50),
    (-123.15, 37.95),
    (-123.20, 38.25),
    (-123.92, 38.95),
    (-123.95, 39.50),
    (-124.30, 40.00),
    (-124.50, 40.45),
    (-124.30, 41.00),
    (-124.45, 41.75),
)
CALIFORNIA_SOURCE = (
    "simplified outline of California: legal land borders (42N; 120W to Lake Tahoe; the "
    "oblique line to the Colorado River at 35N; the river, simplified; the 1848 line to the "
    "Pacific), coast drawn offshore around the coastal districts, the Channel Islands and "
    "Santa Catalina"
)
# District centroids are rounded to 0.01 degree (about 1 km); a few real ones sit on the
# legal border line. A margin of a couple of km absorbs that and nothing more (Tijuana and
# Mexicali are 4.6 km beyond the border, Reno 17 km).
DEFAULT_REGION_MARGIN_KM = 2.0
_KM_PER_DEGREE = 111.195  # mean Earth radius 6371.0 km
_BAND_DEGREES = 0.1  # latitude bands of the edge index used by the ray casting


class ContractError(ValueError):
    """A frame breaks the contract; ``violations`` lists every problem found."""

    def __init__(self, violations: list[str], *, what: str = "data") -> None:
        self.violations = violations
        head = f"{what} breaks the data contract ({len(violations)} violation(s))"
        super().__init__(head + ":\n  - " + "\n  - ".join(violations))


def normalize_category(value: object) -> str:
    """Canonical spelling of an ``ocean_proximity`` value: trimmed, inner spaces folded, upper."""
    return " ".join(str(value).split()).upper()


class Violation(NamedTuple):
    """One problem in one row: the field(s) involved and a one-line reason naming them."""

    row: int
    fields: tuple[str, ...]
    reason: str


class Violations(list):
    """The violations found (at most the ``limit`` asked for); ``total`` counts all of them
    and ``field_total`` the fields they name (a two-field rule names two)."""

    def __init__(
        self,
        items: Sequence[Violation] = (),
        total: int | None = None,
        field_total: int | None = None,
    ) -> None:
        super().__init__(items)
        self.total = len(self) if total is None else total
        self.field_total = sum(len(v.fields) for v in self) if field_total is None else field_total


@dataclass(frozen=True)
class FeatureSpec:
    """Type and allowed values of one input column, and where its bounds come from."""

    dtype: str  # "float" or "category"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()
    min_exclusive: bool = False  # True: values must be strictly above ``min``
    basis: tuple[tuple[str, str], ...] = ()  # ("min", why), ("max", why): documentation
    observed: tuple[float, float] | None = None  # train range the bounds were derived from

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "nullable": self.nullable}
        if self.dtype == "category":
            out["categories"] = list(self.categories)
            return out
        out["min"], out["max"] = self.min, self.max
        out["min_exclusive"] = self.min_exclusive
        if self.observed is not None:
            out["observed"] = {"min": self.observed[0], "max": self.observed[1]}
        if self.basis:
            out["basis"] = dict(self.basis)
        return out

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FeatureSpec:
        observed = spec.get("observed")
        return cls(
            dtype=spec["dtype"],
            nullable=bool(spec.get("nullable", False)),
            min=None if spec.get("min") is None else float(spec["min"]),
            max=None if spec.get("max") is None else float(spec["max"]),
            categories=tuple(spec.get("categories", ())),
            min_exclusive=bool(spec.get("min_exclusive", False)),
            basis=tuple((str(k), str(v)) for k, v in (spec.get("basis") or {}).items()),
            observed=None if observed is None else (observed["min"], observed["max"]),
        )

    def describe_range(self) -> str:
        lo = -math.inf if self.min is None else self.min
        hi = math.inf if self.max is None else self.max
        if self.min_exclusive:
            return f"greater than {lo:g} and at most {hi:g}"
        return f"between {lo:g} and {hi:g}"


@dataclass(frozen=True)
class Rule:
    """A cross-field rule ``left <= right`` every real district obeys."""

    left: str
    right: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": f"{self.left} <= {self.right}",
            "fields": [self.left, self.right],
            "why": self.why,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        parts = str(data["check"]).split()
        if len(parts) != 3 or parts[1] != "<=":
            raise ValueError(f"unsupported contract rule {data['check']!r} (expected 'a <= b')")
        left, _, right = parts
        if list(data.get("fields", [left, right])) != [left, right]:
            raise ValueError(f"contract rule {data['check']!r} names other fields")
        return cls(left, right, str(data.get("why", "")))


@dataclass(frozen=True)
class Region:
    """Where districts may lie: inside ``outline`` or within ``margin_km`` of its edge."""

    name: str
    outline: tuple[tuple[float, float], ...]  # (longitude, latitude) vertices, not closed
    margin_km: float
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fields": list(COORDINATES),
            "margin_km": self.margin_km,
            "source": self.source,
            "outline": [[lon, lat] for lon, lat in self.outline],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Region:
        outline = tuple((float(lon), float(lat)) for lon, lat in data["outline"])
        if len(outline) < 3:
            raise ValueError("contract region outline needs at least 3 vertices")
        return cls(
            str(data["name"]), outline, float(data["margin_km"]), str(data.get("source", ""))
        )

    def bounds(self) -> tuple[float, float, float, float]:
        """(lon_min, lon_max, lat_min, lat_max) of the outline widened by the margin."""
        pts = np.asarray(self.outline, dtype=float)
        dlat = self.margin_km / _KM_PER_DEGREE
        dlon = dlat / math.cos(math.radians(float(pts[:, 1].max())))
        return (
            float(pts[:, 0].min()) - dlon,
            float(pts[:, 0].max()) + dlon,
            float(pts[:, 1].min()) - dlat,
            float(pts[:, 1].max()) + dlat,
        )

    @cached_property
    def _index(self) -> dict[str, Any]:
        """Edges as arrays, grouped by latitude band so a point only meets nearby edges."""
        a = np.asarray(self.outline, dtype=float)
        b = np.roll(a, -1, axis=0)
        keep = a[:, 1] != b[:, 1]  # horizontal edges never cross a horizontal ray
        x1, y1, x2, y2 = a[keep, 0], a[keep, 1], b[keep, 0], b[keep, 1]
        lat0, lat1 = float(a[:, 1].min()), float(a[:, 1].max())
        n_bands = max(1, math.ceil((lat1 - lat0) / _BAND_DEGREES))
        edges_lo, edges_hi = np.minimum(y1, y2), np.maximum(y1, y2)
        bands = []
        for k in range(n_bands):
            lo, hi = lat0 + k * _BAND_DEGREES, lat0 + (k + 1) * _BAND_DEGREES
            bands.append(np.flatnonzero((edges_hi >= lo - 1e-9) & (edges_lo <= hi + 1e-9)))
        width = max(len(e) for e in bands)
        dummy = len(x1)  # padding, see below
        table = np.full((n_bands, width), dummy, dtype=np.intp)
        for k, e in enumerate(bands):
            table[k, : len(e)] = e
        # Per band, its edges packed row by row: one contiguous gather per point. Padding is
        # a flat edge far north (finite, so no inf arithmetic): no horizontal ray crosses it.
        far = 1e300
        slope = np.append((x2 - x1) / (y2 - y1), 0.0)[table]
        x1, y1, y2 = np.append(x1, 0.0)[table], np.append(y1, far)[table], np.append(y2, far)[table]
        # Projected (km) vertices for distances: equirectangular at the outline's mid-latitude.
        kx = _KM_PER_DEGREE * math.cos(math.radians((lat0 + lat1) / 2))
        ax, ay = a[:, 0] * kx, a[:, 1] * _KM_PER_DEGREE
        bx, by = b[:, 0] * kx, b[:, 1] * _KM_PER_DEGREE
        # Edges that can lie within the margin of a band's points: those whose latitude
        # range comes within the margin of the band (every edge, horizontal ones included).
        reach = self.margin_km / _KM_PER_DEGREE + 1e-9
        all_lo, all_hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
        near = []
        for k in range(n_bands):
            lo, hi = lat0 + k * _BAND_DEGREES, lat0 + (k + 1) * _BAND_DEGREES
            near.append(np.flatnonzero((all_hi >= lo - reach) & (all_lo <= hi + reach)))
        near_table = np.full((n_bands, max(1, max(len(e) for e in near))), len(a), dtype=np.intp)
        for k, e in enumerate(near):
            near_table[k, : len(e)] = e
        # Padding: a short edge 10^6 km away, never within any margin.
        pad = 1e6
        return {
            "bands": np.stack([x1, y1, y2, slope], axis=1),  # (n_bands, 4, width)
            "near": np.stack(
                [
                    np.append(ax, pad)[near_table],
                    np.append(ay, pad)[near_table],
                    np.append(bx, pad + 1.0)[near_table],
                    np.append(by, pad)[near_table],
                ],
                axis=1,
            ),  # (n_bands, 4, width)
            "lat0": lat0,
            "ax": ax,
            "ay": ay,
            "bx": bx,
            "by": by,
            "kx": kx,
        }

    def _band(self, lat: np.ndarray) -> np.ndarray:
        ix = self._index
        band = ((lat - ix["lat0"]) * (1.0 / _BAND_DEGREES)).astype(np.intp)
        return np.clip(band, 0, len(ix["bands"]) - 1, out=band)

    def inside_outline(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Ray casting (even-odd rule), vectorised; only the edges of each point's band."""
        x1, y1, y2, slope = self._index["bands"][self._band(lat)].transpose(1, 0, 2)
        y = lat[:, None]
        spans = (y1 > y) != (y2 > y)
        crossings = spans & (lon[:, None] < x1 + (y - y1) * slope)
        return (np.count_nonzero(crossings, axis=1) & 1).astype(bool)

    @cached_property
    def _band_lists(self) -> tuple[float, list[list[tuple[float, float, float, float]]]]:
        """``_index``'s bands as Python floats (x1, y1, y2, slope) per edge, for one point."""
        bands = self._index["bands"]  # (n_bands, 4, width)
        return self._index["lat0"], [list(zip(*band.tolist(), strict=True)) for band in bands]

    def inside_outline_point(self, lon: float, lat: float) -> bool:
        """:meth:`inside_outline` for one finite point, in Python floats: the same float64
        operations in the same order, without numpy's per-call cost (the API's single rows)."""
        lat0, bands = self._band_lists
        band = min(max(int((lat - lat0) * (1.0 / _BAND_DEGREES)), 0), len(bands) - 1)
        inside = False
        for x1, y1, y2, slope in bands[band]:
            if ((y1 > lat) != (y2 > lat)) and lon < x1 + (lat - y1) * slope:
                inside = not inside
        return inside

    def distance_km(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Distance from each point to the nearest outline edge, in km (all edges)."""
        ix = self._index
        px, py = lon[:, None] * ix["kx"], lat[:, None] * _KM_PER_DEGREE
        ax, ay = ix["ax"], ix["ay"]
        dx, dy = ix["bx"] - ax, ix["by"] - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        return np.hypot(px - ax - t * dx, py - ay - t * dy).min(axis=1)

    def within_margin(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """True where a point is within ``margin_km`` of the outline (only nearby edges)."""
        ix = self._index
        ax, ay, bx, by = ix["near"][self._band(lat)].transpose(1, 0, 2)  # each (n, width)
        px, py = lon[:, None] * ix["kx"], lat[:, None] * _KM_PER_DEGREE
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        gap = np.hypot(px - ax - t * dx, py - ay - t * dy).min(axis=1)
        return gap <= self.margin_km

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """True where a point is inside the outline or within the margin of its edge."""
        lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        inside = self.inside_outline(lon, lat)
        out = np.flatnonzero(~inside)
        if len(out):
            inside[out] = self.within_margin(lon[out], lat[out])
        return inside

    def describe(self) -> str:
        return f"{self.name} (its outline widened by {self.margin_km:g} km)"


def california(margin_km: float = DEFAULT_REGION_MARGIN_KM) -> Region:
    """The region every district must lie in: California, widened by ``margin_km``."""
    return Region("California", CALIFORNIA_OUTLINE, float(margin_km), CALIFORNIA_SOURCE)


@dataclass(frozen=True)
class Contract:
    """Columns, bounds, rules, region and categories of a district, a real example and
    target bounds."""

    features: dict[str, FeatureSpec]
    target_min: float
    target_max: float
    example: dict[str, Any] = field(default_factory=dict)
    version: int = CONTRACT_VERSION
    rules: tuple[Rule, ...] = ()
    region: Region | None = None
    derivation: dict[str, Any] = field(default_factory=dict)

    @property
    def categories(self) -> tuple[str, ...]:
        return self.features[CATEGORICAL_FEATURE].categories

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "target": TARGET,
            "derivation": self.derivation,
            "features": {name: spec.to_dict() for name, spec in self.features.items()},
            "rules": [rule.to_dict() for rule in self.rules],
            "region": None if self.region is None else self.region.to_dict(),
            "target_range": {"min": self.target_min, "max": self.target_max},
            "example": self.example,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contract:
        """Read a contract written by :meth:`to_dict`; version 1 (data-only bounds, written
        before the physical checks) is upgraded with :func:`upgrade_v1`."""
        if data.get("version") == 1:
            data = upgrade_v1(data)
        if data.get("version") != CONTRACT_VERSION:
            raise ValueError(
                f"unsupported contract version {data.get('version')!r} "
                f"(this code reads version {CONTRACT_VERSION}; re-run the preprocess stage)"
            )
        features = {name: FeatureSpec.from_dict(spec) for name, spec in data["features"].items()}
        missing = set(RAW_FEATURES) - set(features)
        if missing:
            raise ValueError(f"contract lacks features {sorted(missing)}")
        rules = tuple(Rule.from_dict(r) for r in data.get("rules") or ())
        for rule in rules:
            for name in (rule.left, rule.right):
                if name not in NUMERIC_FEATURES:
                    raise ValueError(f"contract rule {rule.left} <= {rule.right}: unknown {name}")
        region = data.get("region")
        rng = data["target_range"]
        return cls(
            features,
            float(rng["min"]),
            float(rng["max"]),
            dict(data.get("example", {})),
            rules=rules,
            region=None if region is None else Region.from_dict(region),
            derivation=dict(data.get("derivation") or {}),
        )

    # -- the checks, vectorised -------------------------------------------------------------

    @cached_property
    def _compiled(self) -> dict[str, Any]:
        specs = [self.features[name] for name in NUMERIC_FEATURES]
        col = {name: i for i, name in enumerate(NUMERIC_FEATURES)}
        low = np.array([-np.inf if s.min is None else s.min for s in specs])
        high = np.array([np.inf if s.max is None else s.max for s in specs])
        exclusive = np.array([s.min_exclusive for s in specs])
        return {
            "specs": specs,
            # x > min  <=>  x >= the next float above min: one comparison for both kinds.
            "low": np.where(exclusive, np.nextafter(low, np.inf), low),
            "high": high,
            "bounded": bool(np.isfinite(low).all() and np.isfinite(high).all()),
            "nullable": np.array([s.nullable for s in specs]),
            "rules": [(col[r.left], col[r.right], r) for r in self.rules],
            # The same bounds as Python floats, for row_is_clean.
            "low_list": np.where(exclusive, np.nextafter(low, np.inf), low).tolist(),
            "high_list": high.tolist(),
            "nullable_list": [bool(s.nullable) for s in specs],
            "lon": col["longitude"],
            "lat": col["latitude"],
        }

    def check_masks(self, numeric: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where each check fails, as boolean arrays over the rows of ``numeric``.

        ``numeric`` is (n, 8) float in :data:`NUMERIC_FEATURES` order, NaN = missing.
        Returns ``(cells, rules, region)``: (n, 8) missing-or-out-of-range cells, (n, r) broken
        rules, (n,) rows outside the region. A row whose coordinates are already out of range
        (or missing) is not also reported outside the region; NaN never breaks a rule.
        """
        c = self._compiled
        x = np.asarray(numeric, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(NUMERIC_FEATURES):
            raise ValueError(f"expected an (n, {len(NUMERIC_FEATURES)}) array, got {x.shape}")
        # NaN compares False everywhere, so it only counts where a field is not nullable.
        cells = (x < c["low"]) | (x > c["high"]) | (np.isnan(x) & ~c["nullable"])
        if not c["bounded"]:
            cells |= np.isinf(x)
        rules = np.zeros((len(x), len(c["rules"])), dtype=bool)
        for k, (i, j, _) in enumerate(c["rules"]):
            rules[:, k] = x[:, i] > x[:, j]
        region = np.zeros(len(x), dtype=bool)
        if self.region is not None and len(x):
            lon_i, lat_i = c["lon"], c["lat"]
            ok = ~(cells[:, lon_i] | cells[:, lat_i])
            rows = np.flatnonzero(ok)
            if len(rows):
                region[rows] = ~self.region.contains(x[rows, lon_i], x[rows, lat_i])
        return cells, rules, region

    def row_is_clean(self, row: Sequence[float]) -> bool:
        """True only if one row (:data:`NUMERIC_FEATURES` order, NaN = missing) breaks no
        check: its bounds, rules and region in Python floats, with the comparisons of
        :meth:`check_masks`. False means "not shown clean here": :meth:`violations_array`
        then decides (a row outside the outline but within its margin is clean there)."""
        c = self._compiled
        low, high, nullable = c["low_list"], c["high_list"], c["nullable_list"]
        for k, value in enumerate(row):
            if value != value:  # NaN: missing
                if not nullable[k]:
                    return False
            elif not (low[k] <= value <= high[k]) or (
                not c["bounded"] and value in (math.inf, -math.inf)
            ):
                return False
        for i, j, _ in c["rules"]:
            if row[i] > row[j]:  # NaN compares False: never a broken rule, as there
                return False
        if self.region is None:
            return True
        lon, lat = row[c["lon"]], row[c["lat"]]
        if lon != lon or lat != lat:
            return False
        return self.region.inside_outline_point(lon, lat)

    def violations_array(self, numeric: np.ndarray, *, limit: int | None = None) -> Violations:
        """Every problem in ``numeric`` as ``Violation(row, fields, reason)``, by row.

        At most ``limit`` are formatted (all when None); ``.total`` counts every one, so the
        cost of a huge bad batch stays bounded. Vectorised: a 1,000-row batch costs well
        under a millisecond. A single row that :meth:`row_is_clean` shows clean takes no
        numpy call at all (40 -> ~5 us, the API's most common request).
        """
        x = np.asarray(numeric, dtype=float)
        if x.shape == (1, len(NUMERIC_FEATURES)) and self.row_is_clean(x[0].tolist()):
            return Violations((), 0, 0)
        cells, rules, region = self.check_masks(x)
        bad = np.concatenate([cells, rules, region[:, None]], axis=1)
        per_check = np.count_nonzero(bad, axis=0)
        total = int(per_check.sum())
        if not total:
            return Violations((), 0, 0)
        # Fields named per check: one per cell, two per rule and for the region.
        field_total = total + int(per_check[cells.shape[1] :].sum())
        hits = np.argwhere(bad)  # row-major: by row, then field, rule, region
        if limit is not None:
            hits = hits[: max(0, limit)]
        c = self._compiled
        n_cells, n_rules = cells.shape[1], rules.shape[1]
        items = []
        for row, k in hits.tolist():
            if k < n_cells:
                items.append(self._cell_violation(row, k, float(x[row, k])))
            elif k < n_cells + n_rules:
                i, j, rule = c["rules"][k - n_cells]
                items.append(
                    Violation(
                        row,
                        (rule.left, rule.right),
                        f"{rule.left} ({x[row, i]:g}) must not exceed {rule.right} "
                        f"({x[row, j]:g}): {rule.why}",
                    )
                )
            else:
                assert self.region is not None
                items.append(
                    Violation(
                        row,
                        ("latitude", "longitude"),
                        f"latitude {x[row, c['lat']]:g}, longitude {x[row, c['lon']]:g} "
                        f"is outside {self.region.describe()}",
                    )
                )
        return Violations(items, total, field_total)

    def _cell_violation(self, row: int, col: int, value: float) -> Violation:
        name = NUMERIC_FEATURES[col]
        spec = self.features[name]
        if math.isnan(value):
            reason = "must not be missing"
        elif math.isinf(value):
            reason = "must be a finite number"
        else:
            reason = f"must be {spec.describe_range()} (got {value:g})"
        return Violation(row, (name,), reason)


def upgrade_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 contract (bounds = train range widened, clamped at 0) as version 2.

    Models registered before the physical checks carry one. Their data bounds are kept;
    the domain minimums, the cross-field rules and the California region (default margin)
    are added, so the upgraded contract is never looser than either.
    """
    features: dict[str, Any] = {}
    for name, spec in data["features"].items():
        spec = dict(spec)
        if name in DOMAIN_MINIMUM and spec.get("dtype") == "float":
            minimum, exclusive, why = DOMAIN_MINIMUM[name]
            if spec.get("min") is None or spec["min"] <= minimum:
                spec["min"], spec["min_exclusive"] = minimum, exclusive
                spec["basis"] = {"min": f"domain: {why}", "max": "version-1 contract"}
        features[name] = spec
    return {
        **data,
        "version": CONTRACT_VERSION,
        "features": features,
        "rules": [Rule(*r).to_dict() for r in CROSS_FIELD_RULES],
        "region": california().to_dict(),
        "derivation": {"upgraded_from_version": 1},
    }


def numeric_matrix(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The (n, 8) float matrix :meth:`Contract.violations_array` takes, from dict rows
    (a request's instances, a form, a CSV row): a missing key or None becomes NaN.

    Raises ValueError naming the row and field of a value that is not a number.
    """
    out = np.full((len(records), len(NUMERIC_FEATURES)), np.nan)
    for row, record in enumerate(records):
        for col, name in enumerate(NUMERIC_FEATURES):
            value = record.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(f"row {row}: {name} must be a number, got {value!r}")
            out[row, col] = value
    return out


def _round_out(value: float, up: bool) -> float:
    """Round a bound outwards to 4 significant digits so the JSON stays readable."""
    if value == 0:
        return 0.0
    digits = 3 - math.floor(math.log10(abs(value)))
    scale = 10.0**digits
    return (math.ceil if up else math.floor)(value * scale) / scale


def derive_contract(
    train: pd.DataFrame,
    *,
    margin: float,
    region_margin_km: float = DEFAULT_REGION_MARGIN_KM,
) -> Contract:
    """Derive the contract from the training split.

    Lower bounds are domain limits (:data:`DOMAIN_MINIMUM`); upper bounds of counts, age and
    income are the observed maximum plus ``margin`` times the observed range (4 significant
    digits, rounded up). Coordinates must lie in California widened by ``region_margin_km``
    (their min/max are that region's bounding box, for forms). Categories are those seen in
    training. The example is the real district nearest the per-column medians.
    """
    region = california(region_margin_km)
    lon_lo, lon_hi, lat_lo, lat_hi = region.bounds()
    boxes = {"longitude": (lon_lo, lon_hi), "latitude": (lat_lo, lat_hi)}
    pct = f"{margin * 100:g} %"
    features: dict[str, FeatureSpec] = {}
    for name in NUMERIC_FEATURES:
        col = train[name].astype(float)
        lo, hi = float(col.min()), float(col.max())
        if name in boxes:
            low, high = boxes[name]
            basis = (
                ("min", f"bounding box of {region.describe()}; the region decides"),
                ("max", f"bounding box of {region.describe()}; the region decides"),
            )
            features[name] = FeatureSpec(
                "float",
                nullable=name in NULLABLE_FEATURES,
                min=_round_out(low, up=False),
                max=_round_out(high, up=True),
                basis=basis,
                observed=(lo, hi),
            )
            continue
        minimum, exclusive, why = DOMAIN_MINIMUM[name]
        features[name] = FeatureSpec(
            "float",
            nullable=name in NULLABLE_FEATURES,
            min=minimum,
            max=_round_out(hi + margin * (hi - lo), up=True),
            min_exclusive=exclusive,
            basis=(("min", f"domain: {why}"), ("max", f"train max + {pct} of the train range")),
            observed=(lo, hi),
        )
    cats = tuple(sorted(normalize_category(c) for c in train[CATEGORICAL_FEATURE].unique()))
    features[CATEGORICAL_FEATURE] = FeatureSpec("category", categories=cats)

    complete = train.dropna(subset=list(NUMERIC_FEATURES))
    numeric = complete[list(NUMERIC_FEATURES)].to_numpy(float)
    scale = numeric.std(axis=0)
    scale[scale == 0] = 1.0
    dist = np.abs((numeric - np.median(numeric, axis=0)) / scale).sum(axis=1)
    row = complete.iloc[int(np.argmin(dist))]
    example = {name: float(row[name]) for name in NUMERIC_FEATURES}
    example[CATEGORICAL_FEATURE] = normalize_category(row[CATEGORICAL_FEATURE])

    target = train[TARGET].astype(float)
    derivation = {
        "source": "training split",
        "rows": len(train),
        "upper_margin": margin,
        "region_margin_km": float(region_margin_km),
        "lower_bounds": "domain limits (see each feature's basis)",
        "upper_bounds": f"train max + {pct} of the train range, 4 significant digits",
        "coordinates": f"inside {region.describe()}",
        "rules": "cross-field rules every real district obeys",
    }
    return Contract(
        features,
        float(target.min()),
        float(target.max()),
        example,
        rules=tuple(Rule(*r) for r in CROSS_FIELD_RULES),
        region=region,
        derivation=derivation,
    )


def validate_frame(frame: pd.DataFrame, contract: Contract, *, with_target: bool) -> list[str]:
    """Return every contract violation in ``frame`` as a readable line (empty when valid).

    Structure (columns, numbers, nulls, categories, target) is checked here; bounds, rules
    and the region by :meth:`Contract.check_masks`, the same code the API runs.
    """
    import pandas as pd

    problems: list[str] = []
    expected = list(RAW_FEATURES) + ([TARGET] if with_target else [])
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    unexpected = [c for c in frame.columns if c not in expected]
    if unexpected:
        problems.append(f"unexpected column(s): {', '.join(unexpected)}")

    numeric = np.full((len(frame), len(NUMERIC_FEATURES)), np.nan)
    for k, name in enumerate(NUMERIC_FEATURES):
        if name not in frame.columns:
            continue
        col = frame[name]
        values = pd.to_numeric(col, errors="coerce")
        non_numeric = int((values.isna() & col.notna()).sum())
        if non_numeric:
            problems.append(f"{name}: {non_numeric} non-numeric value(s)")
        nulls = int(col.isna().sum())
        if nulls and not contract.features[name].nullable:
            problems.append(f"{name}: {nulls} missing value(s); column is not nullable")
        numeric[:, k] = values.to_numpy(dtype=float, na_value=np.nan)

    cells, rules, region = contract.check_masks(numeric)
    labels = frame.index
    for k, name in enumerate(NUMERIC_FEATURES):
        # Missing values were reported above, with their cause (null or not a number).
        rows = np.flatnonzero(cells[:, k] & ~np.isnan(numeric[:, k]))
        if len(rows):
            spec = contract.features[name]
            first = rows[0]
            lo = "(" if spec.min_exclusive else "["
            problems.append(
                f"{name}: {len(rows)} row(s) outside {lo}{spec.min:g}, {spec.max:g}] "
                f"(e.g. row {labels[first]}: {numeric[first, k]:g})"
            )
    for k, (i, j, rule) in enumerate(contract._compiled["rules"]):
        rows = np.flatnonzero(rules[:, k])
        if len(rows):
            first = rows[0]
            problems.append(
                f"{rule.left} > {rule.right}: {len(rows)} row(s) "
                f"(e.g. row {labels[first]}: {numeric[first, i]:g} > {numeric[first, j]:g}); "
                f"{rule.why}"
            )
    rows = np.flatnonzero(region)
    if len(rows):
        assert contract.region is not None
        first = rows[0]
        problems.append(
            f"latitude/longitude: {len(rows)} row(s) outside {contract.region.describe()} "
            f"(e.g. row {labels[first]}: {numeric[first, 1]:g}, {numeric[first, 0]:g})"
        )

    if CATEGORICAL_FEATURE in frame.columns:
        spec = contract.features[CATEGORICAL_FEATURE]
        col = frame[CATEGORICAL_FEATURE]
        values = col.dropna().map(normalize_category)
        bad = values[~values.isin(spec.categories)]
        if len(bad):
            shown = ", ".join(repr(v) for v in sorted(set(bad))[:5])
            problems.append(
                f"{CATEGORICAL_FEATURE}: {len(bad)} row(s) with unknown category ({shown}); "
                f"allowed: {', '.join(spec.categories)}"
            )
        nulls = int(col.isna().sum())
        if nulls:
            problems.append(
                f"{CATEGORICAL_FEATURE}: {nulls} missing value(s); column is not nullable"
            )
    if with_target and TARGET in frame.columns:
        target = pd.to_numeric(frame[TARGET], errors="coerce")
        bad = target[target.isna() | (target <= 0) | (target > contract.target_max)]
        if len(bad):
            problems.append(
                f"{TARGET}: {len(bad)} row(s) missing or outside (0, {contract.target_max:g}]"
            )
    return problems


def check_frame(frame: pd.DataFrame, contract: Contract, *, with_target: bool, what: str) -> None:
    """Raise :class:`ContractError` listing every violation in ``frame``."""
    problems = validate_frame(frame, contract, with_target=with_target)
    if problems:
        raise ContractError(problems, what=what)


def check_schema(frame: pd.DataFrame, *, with_target: bool, what: str) -> None:
    """Structural check used before a contract exists: columns present and numeric."""
    import pandas as pd

    expected = list(RAW_FEATURES) + ([TARGET] if with_target else [])
    problems = []
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    for name in NUMERIC_FEATURES + ((TARGET,) if with_target else ()):
        if name in frame.columns and not pd.api.types.is_numeric_dtype(frame[name]):
            problems.append(f"{name}: expected numbers, found {frame[name].dtype}")
    if problems:
        raise ContractError(problems, what=what)
