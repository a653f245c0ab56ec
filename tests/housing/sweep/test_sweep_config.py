"""W&B sweep syntax -> validated spec -> Optuna distributions; every bad config names its key."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from housing.sweep import (
    SweepConfigError,
    build_pruner,
    build_sampler,
    effective_n_trials,
    parse_sweep_config,
    wandb_sweep_config,
)


def _cfg(params: dict, **top) -> dict:
    return {
        "method": "bayes",
        "metric": {"name": "cv_rmse", "goal": "minimize"},
        "parameters": params,
        **top,
    }


def _param(p: dict, **top):
    return parse_sweep_config(_cfg({"x": p}, **top)).parameters["x"]


E = math.e


@pytest.mark.parametrize(
    ("p", "kind", "expected"),
    [
        ({"value": 800}, "constant", None),
        ({"distribution": "constant", "value": "gbdt"}, "constant", None),
        ({"values": ["gbdt", "dart"]}, "categorical", CategoricalDistribution(("gbdt", "dart"))),
        ({"min": 5, "max": 100}, "int_uniform", IntDistribution(5, 100)),
        (
            {"distribution": "int_uniform", "min": 15, "max": 255},
            "int_uniform",
            IntDistribution(15, 255),
        ),
        ({"min": 0.5, "max": 1.0}, "uniform", FloatDistribution(0.5, 1.0)),
        ({"min": 1, "max": 2.5}, "uniform", FloatDistribution(1.0, 2.5)),
        ({"distribution": "uniform", "min": 1, "max": 3}, "uniform", FloatDistribution(1.0, 3.0)),
        (
            {"distribution": "log_uniform_values", "min": 0.01, "max": 0.2},
            "log_uniform_values",
            FloatDistribution(0.01, 0.2, log=True),
        ),
        (
            {"distribution": "log_uniform", "min": -3, "max": 0},
            "log_uniform",
            FloatDistribution(E**-3, 1.0, log=True),
        ),
        (
            {"distribution": "inv_log_uniform_values", "min": 0.1, "max": 10.0},
            "inv_log_uniform_values",
            FloatDistribution(0.1, 10.0, log=True),
        ),
        (
            {"distribution": "inv_log_uniform", "min": 0, "max": 2},
            "inv_log_uniform",
            FloatDistribution(E**-2, 1.0, log=True),
        ),
        (
            {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25},
            "q_uniform",
            FloatDistribution(0.0, 1.0, step=0.25),
        ),
        (
            {"distribution": "q_uniform", "min": 0, "max": 100, "q": 10},
            "q_uniform",
            IntDistribution(0, 100, step=10),
        ),
        (
            {"distribution": "q_uniform", "min": 1, "max": 10, "q": 4},
            "q_uniform",
            FloatDistribution(1.0, 10.0),
        ),
        (
            {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 1},
            "q_log_uniform_values",
            FloatDistribution(1.0, 1000.0, log=True),
        ),
        (
            {"distribution": "q_log_uniform", "min": 0, "max": 3, "q": 2},
            "q_log_uniform",
            FloatDistribution(1.0, E**3, log=True),
        ),
    ],
)
def test_each_form_maps_to_its_optuna_distribution(p, kind, expected) -> None:
    spec = _param(p)
    assert spec.distribution == kind
    got = spec.to_optuna()
    if expected is None:
        assert got is None
        return
    assert type(got) is type(expected)
    if isinstance(expected, CategoricalDistribution):
        assert got.choices == expected.choices
    else:
        assert math.isclose(got.low, expected.low) and math.isclose(got.high, expected.high)
        assert got.log == expected.log and got.step == expected.step


def test_inference_rules_follow_wandb() -> None:
    spec = parse_sweep_config(
        _cfg(
            {
                "n": {"value": 800},
                "b": {"values": ["gbdt", "dart"]},
                "i": {"min": 5, "max": 100},
                "f": {"min": 0.5, "max": 1.0},
                "mixed": {"min": 0, "max": 1.0},
            }
        )
    )
    kinds = {n: p.distribution for n, p in spec.parameters.items()}
    assert kinds == {
        "n": "constant",
        "b": "categorical",
        "i": "int_uniform",
        "f": "uniform",
        "mixed": "uniform",
    }


def test_quantized_values_are_rounded_like_wandb() -> None:
    qlog = _param({"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 5})
    assert qlog.decode(12.6) == 15 and isinstance(qlog.decode(12.6), int)
    misaligned = _param({"distribution": "q_uniform", "min": 1, "max": 10, "q": 4})
    assert misaligned.decode(5.1) == 4
    fq = _param({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.1})
    assert fq.decode(0.30000000000000004) == 0.3


def test_structured_categorical_values_round_trip_through_optuna() -> None:
    p = _param({"values": [[64, 32], [128], {"a": 1}]})
    dist = p.to_optuna()
    assert all(isinstance(c, str) for c in dist.choices)
    assert [p.decode(c) for c in dist.choices] == [[64, 32], [128], {"a": 1}]


def test_spec_fields_and_decode_adds_constants() -> None:
    cfg = _cfg(
        {"lr": {"min": 0.01, "max": 0.2}, "n_estimators": {"value": 800}},
        early_terminate={"type": "hyperband", "min_iter": 1, "eta": 3},
        run_cap=40,
    )
    spec = parse_sweep_config(cfg)
    assert (spec.method, spec.metric_name, spec.goal, spec.run_cap) == (
        "bayes",
        "cv_rmse",
        "minimize",
        40,
    )
    assert spec.early_terminate["min_iter"] == 1
    assert list(spec.optuna_distributions()) == ["lr"]
    assert spec.decode({"lr": 0.05}) == {"lr": 0.05, "n_estimators": 800}


def test_wandb_engine_receives_the_original_dict() -> None:
    cfg = _cfg(
        {"lr": {"distribution": "log_uniform_values", "min": 0.01, "max": 0.2}},
        early_terminate={"type": "hyperband", "min_iter": 1, "eta": 3},
        run_cap=40,
        program="stages/sweep.py",
    )
    sent = wandb_sweep_config(parse_sweep_config(cfg))
    assert sent == cfg
    sent["parameters"]["lr"]["min"] = 99  # a copy: the caller's dict is untouched
    assert cfg["parameters"]["lr"]["min"] == 0.01


def test_run_cap_and_grid_size_cap_the_trial_count() -> None:
    assert (
        effective_n_trials(parse_sweep_config(_cfg({"x": {"min": 0.0, "max": 1.0}}, run_cap=7)), 50)
        == 7
    )
    assert (
        effective_n_trials(
            parse_sweep_config(_cfg({"x": {"min": 0.0, "max": 1.0}}, run_cap=70)), 50
        )
        == 50
    )
    grid = parse_sweep_config(
        {**_cfg({"a": {"values": [1, 2, 3]}, "b": {"min": 1, "max": 2}}), "method": "grid"}
    )
    assert effective_n_trials(grid, 100) == 6
    with pytest.raises(ValueError, match="n_trials"):
        effective_n_trials(grid, 0)


def test_method_selects_sampler_and_hyperband_maps_to_pruner() -> None:
    params = {"a": {"values": [1, 2]}}
    assert isinstance(
        build_sampler(parse_sweep_config(_cfg(params)), 0), optuna.samplers.TPESampler
    )
    assert isinstance(
        build_sampler(parse_sweep_config({**_cfg(params), "method": "random"}), 0),
        optuna.samplers.RandomSampler,
    )
    assert isinstance(
        build_sampler(parse_sweep_config({**_cfg(params), "method": "grid"}), 0),
        optuna.samplers.GridSampler,
    )
    assert isinstance(build_pruner(parse_sweep_config(_cfg(params))), optuna.pruners.NopPruner)
    hb = build_pruner(
        parse_sweep_config(
            _cfg(params, early_terminate={"type": "hyperband", "min_iter": 2, "eta": 2})
        )
    )
    assert isinstance(hb, optuna.pruners.HyperbandPruner)
    assert (hb._min_resource, hb._reduction_factor) == (2, 2)


BAD = [
    ("not a mapping", ["method"], "expected a mapping"),
    ("unknown top key", {**_cfg({"x": {"value": 1}}), "metrics": {}}, "'metrics'"),
    (
        "missing method",
        {k: v for k, v in _cfg({"x": {"value": 1}}).items() if k != "method"},
        "method",
    ),
    ("bad method", {**_cfg({"x": {"value": 1}}), "method": "bayesian"}, "method"),
    (
        "missing metric",
        {k: v for k, v in _cfg({"x": {"value": 1}}).items() if k != "metric"},
        "metric",
    ),
    (
        "metric without name",
        {**_cfg({"x": {"value": 1}}), "metric": {"goal": "minimize"}},
        "metric.name",
    ),
    (
        "bad goal",
        {**_cfg({"x": {"value": 1}}), "metric": {"name": "m", "goal": "min"}},
        "metric.goal",
    ),
    (
        "unknown metric key",
        {**_cfg({"x": {"value": 1}}), "metric": {"name": "m", "gaol": "max"}},
        "'gaol'",
    ),
    ("missing parameters", {"method": "bayes", "metric": {"name": "m"}}, "parameters"),
    ("empty parameters", _cfg({}), "parameters"),
    ("param not a mapping", _cfg({"lr": 0.1}), "parameters.lr"),
    ("unknown param key", _cfg({"lr": {"mn": 0.1, "max": 1.0}}), "parameters.lr: unknown key 'mn'"),
    ("min > max", _cfg({"lr": {"min": 1.0, "max": 0.1}}), "parameters.lr: min (1.0) is greater"),
    ("only min", _cfg({"lr": {"min": 1.0}}), "parameters.lr"),
    (
        "log min <= 0",
        _cfg({"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}),
        "min > 0",
    ),
    (
        "int_uniform float",
        _cfg({"n": {"distribution": "int_uniform", "min": 1.5, "max": 4}}),
        "parameters.n",
    ),
    (
        "unknown distribution",
        _cfg({"lr": {"distribution": "uniformm", "min": 0, "max": 1}}),
        "'uniformm'",
    ),
    (
        "normal unsupported",
        _cfg({"lr": {"distribution": "normal", "mu": 0, "sigma": 1}}),
        "parameters.lr",
    ),
    ("mu/sigma inferred", _cfg({"lr": {"mu": 0, "sigma": 1}}), "parameters.lr"),
    (
        "q not positive",
        _cfg({"n": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 0}}),
        "parameters.n.q",
    ),
    ("q without distribution", _cfg({"n": {"min": 0, "max": 10, "q": 2}}), "parameters.n"),
    ("empty values", _cfg({"b": {"values": []}}), "parameters.b.values"),
    (
        "probabilities length",
        _cfg({"b": {"values": [1, 2], "probabilities": [1.0]}}),
        "parameters.b.probabilities",
    ),
    (
        "probabilities sum",
        _cfg({"b": {"values": [1, 2], "probabilities": [0.5, 0.6]}}),
        "parameters.b.probabilities",
    ),
    (
        "key not for distribution",
        _cfg({"lr": {"distribution": "uniform", "min": 0, "max": 1, "values": [1]}}),
        "'values'",
    ),
    ("value and values", _cfg({"b": {"value": 1, "values": [1, 2]}}), "parameters.b"),
    ("nested parameters", _cfg({"opt": {"parameters": {"lr": {"value": 1}}}}), "parameters.opt"),
    ("non-numeric bound", _cfg({"lr": {"min": "0.1", "max": 1.0}}), "parameters.lr.min"),
    ("bool bound", _cfg({"lr": {"min": True, "max": 3}}), "parameters.lr.min"),
    (
        "other early_terminate",
        _cfg({"x": {"value": 1}}, early_terminate={"type": "envelope"}),
        "early_terminate.type",
    ),
    (
        "hyperband without iters",
        _cfg({"x": {"value": 1}}, early_terminate={"type": "hyperband"}),
        "min_iter or max_iter",
    ),
    (
        "hyperband eta",
        _cfg({"x": {"value": 1}}, early_terminate={"type": "hyperband", "min_iter": 1, "eta": 1}),
        "early_terminate.eta",
    ),
    (
        "hyperband unknown key",
        _cfg({"x": {"value": 1}}, early_terminate={"type": "hyperband", "min_iter": 1, "etta": 3}),
        "'etta'",
    ),
    ("run_cap zero", _cfg({"x": {"value": 1}}, run_cap=0), "run_cap"),
    (
        "grid continuous",
        {**_cfg({"lr": {"min": 0.1, "max": 1.0}}), "method": "grid"},
        "parameters.lr: grid search",
    ),
    (
        "grid probabilities",
        {**_cfg({"b": {"values": [1, 2], "probabilities": [0.5, 0.5]}}), "method": "grid"},
        "parameters.b.probabilities",
    ),
]


@pytest.mark.parametrize(("case", "cfg", "needle"), BAD, ids=[b[0] for b in BAD])
def test_invalid_config_is_one_line_naming_the_key(case, cfg, needle) -> None:
    with pytest.raises(SweepConfigError) as info:
        parse_sweep_config(cfg)
    message = str(info.value)
    assert needle in message, message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_probabilities_are_accepted_for_the_wandb_engine() -> None:
    p = _param({"values": ["a", "b"], "probabilities": [0.25, 0.75]})
    assert p.probabilities == (0.25, 0.75)
