"""The data contract: derivation from a training frame, validation, category spelling."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from housing.contract import (
    CALIFORNIA_OUTLINE,
    NUMERIC_FEATURES,
    RAW_FEATURES,
    TARGET,
    Contract,
    ContractError,
    Region,
    Violation,
    california,
    check_frame,
    check_schema,
    derive_contract,
    normalize_category,
    numeric_matrix,
    validate_frame,
)


@pytest.fixture(scope="module")
def rows(housing_df: pd.DataFrame) -> pd.DataFrame:
    """Forty real districts, a few of them without total_bedrooms."""
    missing = housing_df[housing_df["total_bedrooms"].isna()].head(3)
    return pd.concat([housing_df.head(37), missing]).reset_index(drop=True)


@pytest.fixture(scope="module")
def contract(rows: pd.DataFrame) -> Contract:
    return derive_contract(rows, margin=0.25)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("NEAR BAY", "NEAR BAY"),
        ("near bay", "NEAR BAY"),
        ("  Near   Bay\t", "NEAR BAY"),
        ("<1h ocean", "<1H OCEAN"),
        ("inland", "INLAND"),
    ],
)
def test_normalize_category(raw, canonical):
    assert normalize_category(raw) == canonical


def test_derived_bounds_are_domain_limits_below_and_data_above(rows, contract):
    for name in NUMERIC_FEATURES:
        spec = contract.features[name]
        lo, hi = rows[name].min(), rows[name].max()
        assert spec.min <= lo and spec.max >= hi
        assert spec.observed == (lo, hi)
        assert spec.nullable == (name == "total_bedrooms")
        assert dict(spec.basis).keys() == {"min", "max"}
    for name in ("total_rooms", "total_bedrooms", "population", "households"):
        spec = contract.features[name]
        assert (spec.min, spec.min_exclusive) == (1.0, False), name
        lo, hi = spec.observed
        assert spec.max == pytest.approx(hi + 0.25 * (hi - lo), rel=1e-3)
    age, income = contract.features["housing_median_age"], contract.features["median_income"]
    assert (age.min, age.min_exclusive) == (0.0, False)
    assert (income.min, income.min_exclusive) == (0.0, True)
    # Coordinates: the bounding box of California (widened), whatever the sample covers.
    assert contract.features["longitude"].min < -124.4 < -114.2 < contract.features["longitude"].max
    assert contract.features["latitude"].min < 32.53 < 42.0 < contract.features["latitude"].max
    assert contract.region is not None and contract.region.margin_km == 2.0
    assert [(r.left, r.right) for r in contract.rules] == [("total_bedrooms", "total_rooms")]


def test_derived_categories_example_and_target(rows, contract):
    assert contract.categories == tuple(sorted(rows["ocean_proximity"].unique()))
    assert contract.target_max == rows[TARGET].max()
    assert set(contract.example) == set(RAW_FEATURES)
    real = rows[list(NUMERIC_FEATURES)].to_numpy(float)
    example = np.array([contract.example[n] for n in NUMERIC_FEATURES])
    assert (np.abs(real - example).sum(axis=1) == 0).any(), "the example is a real district"


def test_contract_round_trips_through_a_dict(contract):
    assert Contract.from_dict(contract.to_dict()) == contract


def test_from_dict_refuses_another_version_or_missing_features(contract):
    data = contract.to_dict()
    with pytest.raises(ValueError, match="unsupported contract version 99"):
        Contract.from_dict({**data, "version": 99})

    features = {k: v for k, v in data["features"].items() if k != "households"}
    with pytest.raises(ValueError, match="households"):
        Contract.from_dict({**data, "features": features})


def test_valid_rows_pass_including_missing_bedrooms(rows, contract):
    assert rows["total_bedrooms"].isna().sum() == 3
    assert validate_frame(rows, contract, with_target=True) == []
    assert validate_frame(rows.drop(columns=[TARGET]), contract, with_target=False) == []


def test_every_violation_is_reported_at_once(rows, contract):
    bad = rows.drop(columns=["households"]).astype({"housing_median_age": object})
    bad.loc[1, "median_income"] = 1_000.0  # out of range
    bad.loc[2, "ocean_proximity"] = "on the moon"  # unknown category
    bad.loc[3, "longitude"] = np.nan  # NaN in a non-nullable column
    bad.loc[4, "housing_median_age"] = "old"  # not a number
    bad.loc[5, "population"] = np.inf
    bad.loc[6, TARGET] = -5.0
    bad["extra"] = 1

    problems = validate_frame(bad, contract, with_target=True)
    hi = contract.features["median_income"].max
    assert problems == [
        "missing column(s): households",
        "unexpected column(s): extra",
        "longitude: 1 missing value(s); column is not nullable",
        "housing_median_age: 1 non-numeric value(s)",
        f"population: 1 row(s) outside [1, {contract.features['population'].max:g}] "
        "(e.g. row 5: inf)",
        f"median_income: 1 row(s) outside (0, {hi:g}] (e.g. row 1: 1000)",
        "ocean_proximity: 1 row(s) with unknown category ('ON THE MOON'); "
        f"allowed: {', '.join(contract.categories)}",
        f"{TARGET}: 1 row(s) missing or outside (0, {contract.target_max:g}]",
    ]

    with pytest.raises(ContractError) as info:
        check_frame(bad, contract, with_target=True, what="the upload")
    assert info.value.violations == problems
    message = str(info.value)
    assert message.startswith(
        f"the upload breaks the data contract ({len(problems)} violation(s)):"
    )
    assert message.count("\n  - ") == len(problems)


def test_category_spelling_does_not_break_the_contract(rows, contract):
    messy = rows.copy()
    messy["ocean_proximity"] = "  " + messy["ocean_proximity"].str.lower() + " "
    assert validate_frame(messy, contract, with_target=True) == []


def test_check_schema_reports_missing_and_non_numeric_columns(rows):
    check_schema(rows, with_target=True, what="raw")
    bad = rows.drop(columns=["latitude", TARGET]).astype({"total_rooms": str})
    with pytest.raises(ContractError) as info:
        check_schema(bad, with_target=True, what="raw.csv")
    assert info.value.violations == [
        f"missing column(s): latitude, {TARGET}",
        "total_rooms: expected numbers, found str",
    ]


# --- the vectorised checks the API, the app and the pipeline share -------------------------

# Places outside California a district must never be priced for: (name, latitude, longitude).
OUTSIDE = [
    ("Reno NV", 39.53, -119.81),
    ("Las Vegas NV", 36.17, -115.14),
    ("Carson City NV", 39.16, -119.77),
    ("Mexicali MX", 32.62, -115.45),
    ("Tijuana MX", 32.50, -117.03),
    ("Pacific off Big Sur", 36.0, -124.0),
    ("Pacific off Point Conception", 34.0, -121.0),
    ("Phoenix AZ", 33.45, -112.07),
]


@pytest.fixture(scope="module")
def full(housing_df: pd.DataFrame) -> Contract:
    """The contract of all 20,640 real districts, as the preprocess stage derives it."""
    return derive_contract(housing_df, margin=0.25)


def _matrix(contract: Contract, n: int = 3, **changes: list[float]) -> np.ndarray:
    """``n`` copies of the contract's real example, with per-row values in ``changes``."""
    x = np.tile([contract.example[name] for name in NUMERIC_FEATURES], (n, 1)).astype(float)
    for name, values in changes.items():
        x[:, NUMERIC_FEATURES.index(name)] = values
    return x


def test_the_example_and_missing_bedrooms_pass(full):
    rooms = full.example["total_rooms"]
    # Bedrooms may be missing, or as many as the rooms (the bound only forbids more).
    x = _matrix(full, total_rooms=[rooms, rooms, 1000.0], total_bedrooms=[np.nan, 1.0, 1000.0])
    found = full.violations_array(x)
    assert list(found) == [] and found.total == 0
    assert full.violations_array(np.empty((0, len(NUMERIC_FEATURES)))).total == 0


@pytest.mark.parametrize("name", ["total_rooms", "population", "households", "total_bedrooms"])
def test_counts_are_at_least_one(full, name):
    """``households = 1e-300`` once got a price: a count below 1 is no district."""
    x = _matrix(full, **{name: [1e-300, 0.0, 1.0]})
    if name == "total_rooms":  # no bedrooms: only the bound is tested, not the rule
        x[:, NUMERIC_FEATURES.index("total_bedrooms")] = np.nan
    found = full.violations_array(x)
    hi = full.features[name].max
    assert list(found) == [
        Violation(0, (name,), f"must be between 1 and {hi:g} (got 1e-300)"),
        Violation(1, (name,), f"must be between 1 and {hi:g} (got 0)"),
    ]


def test_age_and_income_domain_limits(full):
    x = _matrix(full, housing_median_age=[0.0, -1.0, 52.0], median_income=[1e-9, 0.0, 15.0])
    found = full.violations_array(x)
    income_hi = full.features["median_income"].max
    age_hi = full.features["housing_median_age"].max
    assert list(found) == [
        Violation(1, ("housing_median_age",), f"must be between 0 and {age_hi:g} (got -1)"),
        Violation(
            1, ("median_income",), f"must be greater than 0 and at most {income_hi:g} (got 0)"
        ),
    ]
    too_high = _matrix(full, 1, median_income=[income_hi * 1.001])
    assert [v.fields for v in full.violations_array(too_high)] == [("median_income",)]


def test_missing_and_infinite_values(full):
    x = _matrix(full, longitude=[np.nan, -np.inf, -120.0], population=[1.0, np.inf, 2.0])
    x[2, NUMERIC_FEATURES.index("latitude")] = 38.0
    found = full.violations_array(x)
    assert list(found) == [
        Violation(0, ("longitude",), "must not be missing"),
        Violation(1, ("longitude",), "must be a finite number"),
        Violation(1, ("population",), "must be a finite number"),
    ]


def test_more_bedrooms_than_rooms_names_both_fields(full):
    x = _matrix(full, total_rooms=[500.0, 500.0, 500.0], total_bedrooms=[500.0, 501.0, np.nan])
    found = full.violations_array(x)
    assert list(found) == [
        Violation(
            1,
            ("total_bedrooms", "total_rooms"),
            "total_bedrooms (501) must not exceed total_rooms (500): "
            "bedrooms are counted among the rooms",
        )
    ]


@pytest.mark.parametrize(("place", "lat", "lon"), OUTSIDE)
def test_places_outside_california_are_rejected(full, place, lat, lon):
    x = _matrix(full, 1, latitude=[lat], longitude=[lon])
    [violation] = full.violations_array(x)
    assert violation.fields in {("latitude", "longitude"), ("longitude",), ("latitude",)}, place
    if violation.fields == ("latitude", "longitude"):  # inside the box, outside the state
        assert "outside California" in violation.reason
        assert f"latitude {lat:g}, longitude {lon:g}" in violation.reason


def test_places_inside_california_pass(full):
    inside = {
        "San Francisco": (37.77, -122.42),
        "Avalon, Santa Catalina": (33.34, -118.33),
        "South Lake Tahoe": (38.93, -119.98),
        "Needles": (34.84, -114.61),
        "Calexico": (32.68, -115.50),
        "San Ysidro": (32.55, -117.04),
        "Crescent City": (41.76, -124.20),
        "Death Valley": (36.46, -116.87),
    }
    lat, lon = zip(*inside.values(), strict=True)
    x = _matrix(full, len(inside), latitude=list(lat), longitude=list(lon))
    assert list(full.violations_array(x)) == []


def test_a_point_out_of_range_is_not_also_reported_outside_the_region(full):
    x = _matrix(full, 1, latitude=[50.0])
    assert [v.fields for v in full.violations_array(x)] == [("latitude",)]


def test_region_margin_accepts_the_border_within_it_only():
    """A point 1 km beyond an edge is kept with a 2 km margin and refused with 0.5 km."""
    square = ((-120.0, 35.0), (-119.0, 35.0), (-119.0, 36.0), (-120.0, 36.0))
    km = 1.0 / 111.195  # one km of latitude, in degrees
    lon = np.array([-119.5, -119.5, -119.5, -119.5, -118.0, -119.5])
    lat = np.array([35.5, 36.0, 36.0 + km, 35.0 - 3 * km, 35.5, 34.0])
    wide = Region("square", square, margin_km=2.0)
    narrow = Region("square", square, margin_km=0.5)
    assert wide.contains(lon, lat).tolist() == [True, True, True, False, False, False]
    assert narrow.contains(lon, lat).tolist() == [True, True, False, False, False, False]
    assert wide.inside_outline(lon, lat).tolist() == [True, False, False, False, False, False]


def test_ray_casting_on_a_concave_polygon_and_its_vertices():
    """A U shape: the notch is outside; points level with vertices are counted once."""
    u = (
        (0.0, 0.0),
        (3.0, 0.0),
        (3.0, 3.0),
        (2.0, 3.0),
        (2.0, 1.0),
        (1.0, 1.0),
        (1.0, 3.0),
        (0.0, 3.0),
    )
    region = Region("U", u, margin_km=0.0)
    lon = np.array([0.5, 1.5, 2.5, 1.5, 1.5, -0.5, 0.5, 2.5, 3.5])
    lat = np.array([2.0, 2.0, 2.0, 0.5, 1.0 - 1e-9, 1.0, 1.0, 1.0, 1.0])
    assert region.inside_outline(lon, lat).tolist() == [
        True,
        False,
        True,
        True,
        True,
        False,
        True,
        True,
        False,
    ]


def test_region_and_rules_round_trip_and_refuse_unknown_rules(full):
    data = full.to_dict()
    assert data["region"]["fields"] == ["longitude", "latitude"]
    assert len(data["region"]["outline"]) >= 40
    assert data["rules"] == [
        {
            "check": "total_bedrooms <= total_rooms",
            "fields": ["total_bedrooms", "total_rooms"],
            "why": "bedrooms are counted among the rooms",
        }
    ]
    again = Contract.from_dict(data)
    assert again.region == full.region and again.rules == full.rules
    with pytest.raises(ValueError, match="unsupported contract rule"):
        Contract.from_dict({**data, "rules": [{"check": "households < population"}]})
    with pytest.raises(ValueError, match="unsupported contract rule"):
        Contract.from_dict({**data, "rules": [{"check": "total_bedrooms<=total_rooms"}]})
    with pytest.raises(ValueError, match="names other fields"):
        rule = {"check": "total_bedrooms <= total_rooms", "fields": ["population", "households"]}
        Contract.from_dict({**data, "rules": [rule]})
    with pytest.raises(ValueError, match="unknown bedrooms"):
        Contract.from_dict({**data, "rules": [{"check": "bedrooms <= total_rooms"}]})


def test_violations_are_capped_but_counted(full):
    """Only ``limit`` violations are formatted, whatever the batch: the rest is array work."""
    n = 100_000
    x = _matrix(full, n, households=[0.0] * n, population=[0.0] * n)
    x[::2, NUMERIC_FEATURES.index("latitude")] = 39.53  # Reno: outside the region
    x[::2, NUMERIC_FEATURES.index("longitude")] = -119.81
    found = full.violations_array(x, limit=7)
    assert len(found) == 7 and found.total == 2 * n + n // 2
    assert found.field_total == 2 * n + 2 * (n // 2)  # the region names two fields
    assert [(v.row, v.fields[0]) for v in found] == [
        (0, "population"),
        (0, "households"),
        (0, "latitude"),
        (1, "population"),
        (1, "households"),
        (2, "population"),
        (2, "households"),
    ]
    cells, rules, region = full.check_masks(x)
    assert cells.sum() == 2 * n and not rules.any() and region.sum() == n // 2


def test_frames_report_rules_and_region(rows, contract):
    bad = rows.copy()
    bad.loc[4, ["latitude", "longitude"]] = (39.53, -119.81)  # Reno
    bad.loc[6, ["total_rooms", "total_bedrooms"]] = (100.0, 101.0)
    problems = validate_frame(bad, contract, with_target=True)
    assert problems == [
        "total_bedrooms > total_rooms: 1 row(s) (e.g. row 6: 101 > 100); "
        "bedrooms are counted among the rooms",
        "latitude/longitude: 1 row(s) outside California (its outline widened by 2 km) "
        "(e.g. row 4: 39.53, -119.81)",
    ]


def test_the_module_imports_without_pandas():
    code = (
        "import sys, numpy\n"
        "import housing.contract\n"
        "assert 'pandas' not in sys.modules, 'housing.contract imported pandas'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _brute_force_inside(outline, lon, lat):
    """Textbook even-odd ray casting over every edge, one point at a time."""
    inside = []
    n = len(outline)
    for x, y in zip(lon, lat, strict=True):
        hit = False
        for k in range(n):
            (x1, y1), (x2, y2) = outline[k], outline[(k + 1) % n]
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                hit = not hit
        inside.append(hit)
    return np.array(inside)


@pytest.mark.parametrize("margin_km", [0.0, 2.0, 30.0])
def test_the_band_index_changes_no_answer(margin_km):
    """Ray casting and the margin over each latitude band's edges equal the brute force over
    every edge, on random points around California (and 30 km: wider than a band)."""
    region = california(margin_km)
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-125.5, -113.0, 3000), rng.uniform(31.5, 43.0, 3000)
    # Points on the vertices' latitudes are the edge case of ray casting.
    lat[:50] = np.array(CALIFORNIA_OUTLINE)[:50, 1]
    inside = region.inside_outline(lon, lat)
    np.testing.assert_array_equal(inside, _brute_force_inside(CALIFORNIA_OUTLINE, lon, lat))
    near = region.distance_km(lon, lat) <= margin_km
    np.testing.assert_array_equal(region.contains(lon, lat), inside | near)
    assert 0.15 < inside.mean() < 0.6  # the sample straddles the border


def test_numeric_matrix_from_records(full):
    example = dict(full.example)
    no_bedrooms = {k: v for k, v in example.items() if k != "total_bedrooms"}
    x = numeric_matrix([example, no_bedrooms, {**example, "total_bedrooms": None}])
    assert x.shape == (3, len(NUMERIC_FEATURES))
    assert np.isnan(x[1:, NUMERIC_FEATURES.index("total_bedrooms")]).all()
    assert x[0].tolist() == [example[n] for n in NUMERIC_FEATURES]
    assert full.violations_array(x).total == 0
    with pytest.raises(ValueError, match="row 1: households must be a number, got '3'"):
        numeric_matrix([example, {**example, "households": "3"}])
    with pytest.raises(ValueError, match="row 0: latitude must be a number, got True"):
        numeric_matrix([{**example, "latitude": True}])


def test_a_version_1_contract_is_read_with_the_physical_checks_added(full):
    """Models registered before version 2 carry data-only bounds clamped at 0; reading one
    keeps its bounds and adds the domain minimums, the rules and the region."""
    v1 = {
        "version": 1,
        "target": TARGET,
        "features": {
            name: (
                {"dtype": "category", "nullable": False, "categories": list(spec.categories)}
                if spec.dtype == "category"
                else {
                    "dtype": "float",
                    "nullable": spec.nullable,
                    "min": 0.0 if name not in ("longitude", "latitude") else spec.min - 2,
                    "max": spec.max,
                }
            )
            for name, spec in full.features.items()
        },
        "target_range": {"min": full.target_min, "max": full.target_max},
        "example": full.example,
    }
    old = Contract.from_dict(v1)
    assert old.version == 2 and old.derivation == {"upgraded_from_version": 1}
    assert old.rules == full.rules and old.region == full.region
    for name in ("total_rooms", "total_bedrooms", "population", "households"):
        assert old.features[name].min == 1.0
    assert old.features["median_income"].min_exclusive
    assert old.features["latitude"].min == full.features["latitude"].min - 2  # kept
    x = _matrix(full, 3, households=[1e-300, 5.0, 5.0], latitude=[37.0, 39.53, 37.0])
    x[1, NUMERIC_FEATURES.index("longitude")] = -119.81  # Reno
    rooms, bedrooms = (
        NUMERIC_FEATURES.index("total_rooms"),
        NUMERIC_FEATURES.index("total_bedrooms"),
    )
    x[2, bedrooms] = x[2, rooms] + 1
    assert [v.fields for v in old.violations_array(x)] == [
        ("households",),
        ("latitude", "longitude"),
        ("total_bedrooms", "total_rooms"),
    ]


def _one_by_one(contract: Contract, x: np.ndarray) -> list[tuple[int, float]]:
    """Each row alone through violations_array (the single-row fast path where it applies):
    (total, field_total) per row."""
    out = []
    for row in x:
        found = contract.violations_array(row[None, :])
        out.append((found.total, found.field_total))
    return out


def test_single_rows_get_the_vectorised_verdict_on_every_district_and_near_misses(full, housing_df):
    """row_is_clean answers single rows in Python floats; it must never call a row clean
    that the vectorised check refuses. Every district, then the same rows pushed across
    each bound, moved along the coast and the borders, with missing and infinite values."""
    from housing.contract import NUMERIC_FEATURES

    x = housing_df[list(NUMERIC_FEATURES)].to_numpy(float)
    rng = np.random.default_rng(0)
    spec = full._compiled
    edits = [x]
    for k in range(len(NUMERIC_FEATURES)):
        for bound in (spec["low_list"][k], spec["high_list"][k]):
            if np.isfinite(bound):
                moved = x[:500].copy()
                moved[:, k] = bound + rng.choice([-1e-9, 0.0, 1e-9], 500) * max(1.0, abs(bound))
                edits.append(moved)
    jitter = x[rng.choice(len(x), 4000)].copy()
    jitter[:, :2] += rng.normal(0, 0.3, (4000, 2))  # across the coast and the borders
    edits.append(jitter)
    special = x[:40].copy()
    special[::4, 4] = np.nan
    special[1::4, 0] = np.nan
    special[2::4, 3] = np.inf
    special[3::4, 4] = special[3::4, 3] + 1  # more bedrooms than rooms
    edits.append(special)
    every = np.vstack(edits)
    vectorised = full.check_masks(every)
    clean = ~(vectorised[0].any(axis=1) | vectorised[1].any(axis=1) | vectorised[2])
    fast = np.array([full.row_is_clean(row) for row in every.tolist()])
    assert not (fast & ~clean).any()  # never clean where the vectorised check refuses
    assert fast[clean].mean() > 0.95  # and it does answer most clean rows itself
    assert (~clean).sum() > 1000 and clean.sum() > 20_000  # both kinds were tried
    # The answer a single row gets is the vectorised one, row by row.
    sample = every[rng.choice(len(every), 3000, replace=False)]
    whole = full.violations_array(sample)
    per_row = {}
    for v in whole:
        per_row.setdefault(v.row, [0, 0])
        per_row[v.row][0] += 1
        per_row[v.row][1] += len(v.fields)
    expected = [tuple(per_row.get(i, (0, 0))) for i in range(len(sample))]
    assert _one_by_one(full, sample) == expected
