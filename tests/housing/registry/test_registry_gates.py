"""Promotion gates: floors, first model, regression tolerance (pure, no MLflow)."""

from __future__ import annotations

import math

import pytest

from housing.registry import Decision, GateConfig, evaluate_gates

GATES = GateConfig(min_r2=0.85, max_rmse=45_000, max_regression_pct=1.0)


def test_first_model_with_no_champion_promotes_when_floors_pass():
    decision = evaluate_gates({"r2": 0.87, "rmse": 41_000}, None, GATES)
    assert decision.promote is True
    assert "first model" in decision.reason
    assert "41,000" in decision.reason and "0.8700" in decision.reason


@pytest.mark.parametrize(
    ("metrics", "needle"),
    [
        ({"r2": 0.84, "rmse": 41_000}, "r2 0.8400 is below the floor 0.8500"),
        ({"r2": 0.90, "rmse": 45_001}, "rmse 45,001 is above the ceiling 45,000"),
    ],
)
def test_floor_failure_holds_even_without_champion(metrics, needle):
    decision = evaluate_gates(metrics, None, GATES)
    assert decision == Decision(False, decision.reason)
    assert needle in decision.reason


def test_floor_failure_holds_even_when_better_than_champion():
    decision = evaluate_gates({"r2": 0.80, "rmse": 44_000}, {"r2": 0.86, "rmse": 44_900}, GATES)
    assert not decision.promote
    assert "below the floor" in decision.reason


def test_regression_beyond_tolerance_holds():
    # 44,500 is +1.14% over 44,000, the tolerance is +1%.
    decision = evaluate_gates({"r2": 0.86, "rmse": 44_500}, {"r2": 0.86, "rmse": 44_000}, GATES)
    assert not decision.promote
    assert "+1.14%" in decision.reason and "44,000" in decision.reason


def test_slightly_worse_within_tolerance_promotes():
    # 44,400 is +0.91% over 44,000: inside the 1% tolerance.
    decision = evaluate_gates({"r2": 0.86, "rmse": 44_400}, {"r2": 0.86, "rmse": 44_000}, GATES)
    assert decision.promote
    assert "+0.91%" in decision.reason


def test_better_than_champion_promotes():
    decision = evaluate_gates({"r2": 0.88, "rmse": 40_000}, {"r2": 0.86, "rmse": 44_000}, GATES)
    assert decision.promote
    assert "-9.09%" in decision.reason


def test_exact_tolerance_boundary_promotes_and_zero_tolerance_requires_no_regression():
    assert evaluate_gates({"r2": 0.9, "rmse": 40_400}, {"rmse": 40_000}, GATES).promote
    strict = GateConfig(min_r2=0.85, max_rmse=45_000, max_regression_pct=0.0)
    assert evaluate_gates({"r2": 0.9, "rmse": 40_000}, {"rmse": 40_000}, strict).promote
    assert not evaluate_gates({"r2": 0.9, "rmse": 40_001}, {"rmse": 40_000}, strict).promote


@pytest.mark.parametrize(
    "metrics",
    [
        {"r2": 0.9},
        {"rmse": 40_000},
        {"r2": math.nan, "rmse": 40_000},
        {"r2": 0.9, "rmse": math.inf},
    ],
)
def test_missing_or_non_finite_candidate_metrics_hold(metrics):
    decision = evaluate_gates(metrics, None, GATES)
    assert not decision.promote
    assert "no finite" in decision.reason


def test_champion_without_rmse_is_not_a_comparison_basis():
    decision = evaluate_gates({"r2": 0.9, "rmse": 40_000}, {"r2": 0.95}, GATES)
    assert decision.promote
    assert "no usable rmse" in decision.reason


def test_reason_is_one_sentence_line():
    for champion in (None, {"rmse": 40_000}, {"rmse": 30_000}):
        reason = evaluate_gates({"r2": 0.9, "rmse": 40_000}, champion, GATES).reason
        assert "\n" not in reason
        assert reason.endswith(".")


def test_gate_config_from_params_mapping_and_validation():
    assert (
        GateConfig.from_mapping({"min_r2": 0.85, "max_rmse": 45000, "max_regression_pct": 1.0})
        == GATES
    )
    with pytest.raises(ValueError, match="missing keys"):
        GateConfig.from_mapping({"min_r2": 0.85, "max_rmse": 45000})
    with pytest.raises(ValueError, match="unknown keys"):
        GateConfig.from_mapping({"min_r2": 0.85, "max_rmse": 1, "max_regression_pct": 1, "x": 1})
    with pytest.raises(ValueError, match="max_rmse must be > 0"):
        GateConfig(min_r2=0.85, max_rmse=0, max_regression_pct=1.0)
    with pytest.raises(ValueError, match="max_regression_pct must be >= 0"):
        GateConfig(min_r2=0.85, max_rmse=1, max_regression_pct=-1.0)
    with pytest.raises(ValueError, match="must be a number"):
        GateConfig(min_r2="0.85", max_rmse=1, max_regression_pct=1.0)
