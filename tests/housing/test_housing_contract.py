"""The data contract: derivation from a training frame, validation, category spelling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from housing.contract import (
    NUMERIC_FEATURES,
    RAW_FEATURES,
    TARGET,
    Contract,
    ContractError,
    check_frame,
    check_schema,
    derive_contract,
    normalize_category,
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


def test_derived_bounds_widen_the_observed_range(rows, contract):
    for name in NUMERIC_FEATURES:
        spec = contract.features[name]
        lo, hi = rows[name].min(), rows[name].max()
        width = hi - lo
        assert spec.min <= lo and spec.max >= hi
        assert spec.max == pytest.approx(hi + 0.25 * width, rel=1e-3)
        assert spec.nullable == (name == "total_bedrooms")
    # Counts never get a negative lower bound, whatever the margin.
    assert contract.features["housing_median_age"].min >= 0
    assert contract.features["longitude"].min < rows["longitude"].min()


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
        "population: 1 infinite value(s)",
        f"population: 1 row(s) outside [{contract.features['population'].min:g}, "
        f"{contract.features['population'].max:g}] (e.g. row 5: inf)",
        f"median_income: 1 row(s) outside [0, {hi:g}] (e.g. row 1: 1000)",
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
