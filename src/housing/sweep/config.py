"""Parse a W&B-syntax sweep declaration into a validated :class:`SweepSpec`.

The same dict drives both engines: the embedded Optuna engine reads the parsed spec, the
W&B sweep service receives the original dict untouched. Every rejection is one line that
names the offending key, so a typo in ``params.yaml`` is fixed without reading a traceback.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Optuna loads only when a sweep runs: `housing-params check` stays fast.
    from optuna.distributions import BaseDistribution

METHODS = ("bayes", "random", "grid")
GOALS = ("minimize", "maximize")

# Top-level keys W&B accepts. program/command/entity/project/name/description only matter
# to the W&B service; the Optuna engine accepts and ignores them.
_TOP_KEYS = (
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "run_cap",
    "program",
    "command",
    "entity",
    "project",
    "name",
    "description",
)
_METRIC_KEYS = ("name", "goal", "target")
_HYPERBAND_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")
_PARAM_KEYS = ("distribution", "value", "values", "probabilities", "min", "max", "q", "mu", "sigma")

# distribution -> (required keys, optional keys)
_RANGE = ({"min", "max"}, set())
_Q_RANGE = ({"min", "max"}, {"q"})
_DISTRIBUTIONS: dict[str, tuple[set[str], set[str]]] = {
    "constant": ({"value"}, set()),
    "categorical": ({"values"}, {"probabilities"}),
    "int_uniform": _RANGE,
    "uniform": _RANGE,
    "q_uniform": _Q_RANGE,
    "log_uniform": _RANGE,
    "log_uniform_values": _RANGE,
    "q_log_uniform": _Q_RANGE,
    "q_log_uniform_values": _Q_RANGE,
    "inv_log_uniform": _RANGE,
    "inv_log_uniform_values": _RANGE,
}
# Every distribution this parser accepts (the parameter schema lists them for editors).
DISTRIBUTIONS = tuple(_DISTRIBUTIONS)
_UNBOUNDED = ("normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta")
_POSITIVE_RANGE = ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")
_GRID_OK = ("constant", "categorical", "int_uniform", "q_uniform")
_MAX_GRID = 1_000_000
_PRIMITIVE = (str, int, float, bool, type(None))


class SweepConfigError(ValueError):
    """An invalid sweep declaration; the message is one line naming the key and the problem.

    ``where`` is the key's path inside the declaration (``parameters.n_estimators``,
    ``early_terminate.eta``) and ``problem`` the rest, so a caller can name the key in its own
    terms (``housing.params`` names it as ``params.yaml`` spells it).
    """

    def __init__(self, message: str, *, where: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.where = where
        self.problem = problem or message


def _fail(where: str, problem: str) -> SweepConfigError:
    return SweepConfigError(f"sweep config: {where}: {problem}", where=where, problem=problem)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _clean_float(x: float) -> float:
    """Drop binary noise (0.30000000000000004 -> 0.3) so quantized values read as written."""
    return float(f"{x:.12g}")


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter: its resolved W&B distribution and bounds."""

    name: str
    distribution: str
    value: Any = None
    values: tuple[Any, ...] = ()
    probabilities: tuple[float, ...] | None = None
    min: float | int | None = None
    max: float | int | None = None
    q: float | int | None = None

    # -- Optuna mapping -------------------------------------------------------------------

    @property
    def is_constant(self) -> bool:
        return self.distribution == "constant"

    @property
    def _encoded(self) -> bool:
        """Categorical choices that Optuna cannot store (lists, mappings) travel as JSON."""
        return self.distribution == "categorical" and not all(
            isinstance(v, _PRIMITIVE) for v in self.values
        )

    def _choices(self) -> tuple[Any, ...]:
        if self._encoded:
            return tuple(json.dumps(v, sort_keys=True) for v in self.values)
        return self.values

    def _step_aligned(self) -> bool:
        """True when min and max sit on the q-grid, so Optuna's stepped range is exact."""
        assert self.q is not None and self.min is not None and self.max is not None
        if _is_int(self.q) and _is_int(self.min) and _is_int(self.max):
            return self.min % self.q == 0 and self.max % self.q == 0
        return all(
            math.isclose(b / self.q, round(b / self.q), abs_tol=1e-9) for b in (self.min, self.max)
        )

    def _needs_quantize(self) -> bool:
        if self.distribution == "q_uniform":
            return not self._step_aligned()
        return self.distribution in ("q_log_uniform", "q_log_uniform_values")

    def to_optuna(self) -> BaseDistribution | None:
        """The Optuna distribution that samples this parameter; None for a constant."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        d, lo, hi = self.distribution, self.min, self.max
        if d == "constant":
            return None
        if d == "categorical":
            return CategoricalDistribution(self._choices())
        assert lo is not None and hi is not None
        if d == "int_uniform":
            return IntDistribution(int(lo), int(hi))
        if d == "uniform":
            return FloatDistribution(float(lo), float(hi))
        if d == "q_uniform":
            assert self.q is not None
            if not self._step_aligned():
                return FloatDistribution(float(lo), float(hi))
            if _is_int(self.q) and _is_int(lo) and _is_int(hi):
                return IntDistribution(lo, hi, step=self.q)
            return FloatDistribution(float(lo), float(hi), step=float(self.q))
        if d in ("log_uniform", "q_log_uniform"):
            return FloatDistribution(math.exp(lo), math.exp(hi), log=True)
        if d in ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values"):
            # 1/X log-uniform on [1/max, 1/min] is X log-uniform on [min, max].
            return FloatDistribution(float(lo), float(hi), log=True)
        if d == "inv_log_uniform":
            return FloatDistribution(math.exp(-hi), math.exp(-lo), log=True)
        raise AssertionError(f"unmapped distribution {d}")  # parse_sweep_config guards this

    def decode(self, raw: Any) -> Any:
        """Turn the value Optuna sampled into the value the objective receives."""
        if self.distribution == "constant":
            return copy.deepcopy(self.value)
        if self._encoded:
            return json.loads(raw)
        if self.distribution.startswith("q_"):
            assert self.q is not None
            if self._needs_quantize():
                raw = round(raw / self.q) * self.q
            # W&B returns ints when q is an int.
            return round(raw) if _is_int(self.q) else _clean_float(raw)
        return raw

    def grid_values(self) -> list[Any]:
        """Every value a grid search visits, in Optuna's stored form."""
        d = self.distribution
        if d == "categorical":
            return list(self._choices())
        if d == "int_uniform":
            assert _is_int(self.min) and _is_int(self.max)
            return list(range(self.min, self.max + 1))
        if d == "q_uniform":
            assert self.q is not None and self.min is not None and self.max is not None
            n = math.floor((self.max - self.min) / self.q + 1e-9)
            if _is_int(self.q) and _is_int(self.min):
                return [self.min + k * self.q for k in range(n + 1)]
            return [_clean_float(self.min + k * self.q) for k in range(n + 1)]
        raise AssertionError(f"{d} is not a grid distribution")


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: search method, objective metric, parameter space, pruning, cap."""

    method: str
    metric_name: str
    goal: str
    parameters: dict[str, ParamSpec]
    early_terminate: dict[str, Any] | None
    run_cap: int | None
    metric_target: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def optuna_distributions(self) -> dict[str, BaseDistribution]:
        """Optuna distributions of the sampled (non-constant) parameters, in config order."""
        out: dict[str, BaseDistribution] = {}
        for name, p in self.parameters.items():
            dist = p.to_optuna()
            if dist is not None:
                out[name] = dist
        return out

    def decode(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Full params for the objective: decoded samples plus constants, in config order."""
        return {
            name: p.decode(None if p.is_constant else sampled[name])
            for name, p in self.parameters.items()
        }

    def grid_space(self) -> dict[str, list[Any]]:
        """The GridSampler search space (sampled parameters only)."""
        return {n: p.grid_values() for n, p in self.parameters.items() if not p.is_constant}

    def grid_size(self) -> int:
        """Number of distinct points a grid search visits."""
        return math.prod(len(v) for v in self.grid_space().values())


# -- parsing -------------------------------------------------------------------------------


def _check_keys(where: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in given:
        if key not in allowed:
            raise _fail(where, f"unknown key {key!r} (allowed: {', '.join(allowed)})")


def _resolve_distribution(name: str, p: Mapping[str, Any]) -> str:
    """Explicit ``distribution`` or W&B's inference rule from the keys present."""
    where = f"parameters.{name}"
    if "distribution" in p:
        dist = p["distribution"]
        if dist in _UNBOUNDED:
            raise _fail(
                where,
                f"distribution {dist!r} is unbounded and not supported by the Optuna engine; "
                "use uniform or log_uniform_values with min/max",
            )
        if dist not in _DISTRIBUTIONS:
            raise _fail(
                where,
                f"unknown distribution {dist!r} (supported: {', '.join(_DISTRIBUTIONS)})",
            )
        return str(dist)
    if "mu" in p or "sigma" in p:
        raise _fail(where, "normal distributions (mu/sigma) are not supported; use min/max")
    if "value" in p and "values" in p:
        raise _fail(where, "give either 'value' or 'values', not both")
    if "value" in p:
        return "constant"
    if "values" in p:
        return "categorical"
    if "q" in p:
        raise _fail(where, "'q' needs an explicit distribution (q_uniform, q_log_uniform_values)")
    if "min" in p or "max" in p:
        if "min" not in p or "max" not in p:
            raise _fail(where, "needs both 'min' and 'max'")
        lo, hi = p["min"], p["max"]
        return "int_uniform" if _is_int(lo) and _is_int(hi) else "uniform"
    raise _fail(where, "needs 'value', 'values' or 'min'/'max'")


def _parse_param(name: Any, p: Any) -> ParamSpec:
    where = f"parameters.{name}"
    if not isinstance(name, str) or not name:
        raise _fail("parameters", f"parameter names must be non-empty strings, got {name!r}")
    if not isinstance(p, Mapping):
        raise _fail(where, f"expected a mapping (value, values, min/max...), got {p!r}")
    if "parameters" in p:
        raise _fail(where, "nested 'parameters' are not supported; flatten the names")
    _check_keys(where, p, _PARAM_KEYS)
    dist = _resolve_distribution(name, p)
    required, optional = _DISTRIBUTIONS[dist]
    for key in p:
        if key != "distribution" and key not in required | optional:
            raise _fail(where, f"key {key!r} does not apply to distribution {dist}")
    for key in sorted(required):
        if key not in p:
            raise _fail(where, f"distribution {dist} needs {key!r}")

    if dist == "constant":
        return ParamSpec(name, dist, value=copy.deepcopy(p["value"]))
    if dist == "categorical":
        return _parse_categorical(name, p)

    lo, hi = p["min"], p["max"]
    for key, v in (("min", lo), ("max", hi)):
        if not _is_number(v):
            raise _fail(f"{where}.{key}", f"must be a finite number, got {v!r}")
    if dist == "int_uniform" and not (_is_int(lo) and _is_int(hi)):
        raise _fail(where, f"int_uniform needs integer min and max, got {lo!r} and {hi!r}")
    if lo > hi:
        raise _fail(where, f"min ({lo}) is greater than max ({hi})")
    if dist in _POSITIVE_RANGE and lo <= 0:
        raise _fail(where, f"{dist} needs min > 0, got {lo}")
    q = None
    if dist.startswith("q_"):
        q = p.get("q", 1)
        if not _is_number(q) or q <= 0:
            raise _fail(f"{where}.q", f"must be a positive number, got {q!r}")
    return ParamSpec(name, dist, min=lo, max=hi, q=q)


def _parse_categorical(name: str, p: Mapping[str, Any]) -> ParamSpec:
    where = f"parameters.{name}"
    values = p["values"]
    if not isinstance(values, list | tuple) or not values:
        raise _fail(f"{where}.values", f"must be a non-empty list, got {values!r}")
    for v in values:
        if not isinstance(v, (*_PRIMITIVE, list, tuple, dict)):
            raise _fail(f"{where}.values", f"unsupported value {v!r} (scalars, lists, mappings)")
    probs = p.get("probabilities")
    if probs is not None:
        if not isinstance(probs, list | tuple) or len(probs) != len(values):
            raise _fail(f"{where}.probabilities", "must be a list as long as 'values'")
        if not all(_is_number(x) and x >= 0 for x in probs) or not math.isclose(
            sum(probs), 1.0, abs_tol=1e-6
        ):
            raise _fail(f"{where}.probabilities", f"must be non-negative and sum to 1, got {probs}")
        probs = tuple(float(x) for x in probs)
    return ParamSpec(name, "categorical", values=tuple(copy.deepcopy(values)), probabilities=probs)


def _parse_metric(metric: Any) -> tuple[str, str, float | None]:
    if metric is None:
        raise _fail("metric", "is required (name and goal of the score the objective returns)")
    if not isinstance(metric, Mapping):
        raise _fail("metric", f"expected a mapping with name and goal, got {metric!r}")
    _check_keys("metric", metric, _METRIC_KEYS)
    name = metric.get("name")
    if not isinstance(name, str) or not name:
        raise _fail("metric.name", f"must be a non-empty string, got {name!r}")
    goal = metric.get("goal", "minimize")
    if goal not in GOALS:
        raise _fail("metric.goal", f"must be minimize or maximize, got {goal!r}")
    target = metric.get("target")
    if target is not None and not _is_number(target):
        raise _fail("metric.target", f"must be a number, got {target!r}")
    return name, goal, None if target is None else float(target)


def _parse_early_terminate(et: Any) -> dict[str, Any] | None:
    if et is None:
        return None
    if not isinstance(et, Mapping):
        raise _fail("early_terminate", f"expected a mapping with type: hyperband, got {et!r}")
    _check_keys("early_terminate", et, _HYPERBAND_KEYS)
    if et.get("type") != "hyperband":
        kind = et.get("type")
        raise _fail("early_terminate.type", f"only 'hyperband' is supported, got {kind!r}")
    if "min_iter" not in et and "max_iter" not in et:
        raise _fail("early_terminate", "hyperband needs min_iter or max_iter")
    for key in ("min_iter", "max_iter", "s"):
        if key in et and (not _is_int(et[key]) or et[key] < 1):
            raise _fail(f"early_terminate.{key}", f"must be a positive integer, got {et[key]!r}")
    eta = et.get("eta", 3)
    if not _is_int(eta) or eta < 2:
        raise _fail("early_terminate.eta", f"must be an integer >= 2, got {eta!r}")
    if "max_iter" in et and "min_iter" not in et and "s" not in et:
        raise _fail("early_terminate", "hyperband with max_iter needs s (number of brackets)")
    if "min_iter" in et and "max_iter" in et and et["min_iter"] > et["max_iter"]:
        raise _fail("early_terminate", f"min_iter ({et['min_iter']}) > max_iter ({et['max_iter']})")
    if "strict" in et and not isinstance(et["strict"], bool):
        raise _fail("early_terminate.strict", f"must be true or false, got {et['strict']!r}")
    return {**dict(et), "eta": eta}


def parse_sweep_config(cfg: Mapping[str, Any]) -> SweepSpec:
    """Validate a W&B sweep dict and return the spec both engines run from."""
    if not isinstance(cfg, Mapping):
        raise SweepConfigError(f"sweep config: expected a mapping, got {type(cfg).__name__}")
    _check_keys("top level", cfg, _TOP_KEYS)
    method = cfg.get("method")
    if method is None:
        raise _fail("method", "is required (bayes, random or grid)")
    if method not in METHODS:
        raise _fail("method", f"must be bayes, random or grid, got {method!r}")
    metric_name, goal, target = _parse_metric(cfg.get("metric"))

    params = cfg.get("parameters")
    if not isinstance(params, Mapping) or not params:
        raise _fail("parameters", "is required: a non-empty mapping of parameter name to range")
    parsed = {name: _parse_param(name, p) for name, p in params.items()}

    run_cap = cfg.get("run_cap")
    if run_cap is not None and (not _is_int(run_cap) or run_cap < 1):
        raise _fail("run_cap", f"must be a positive integer, got {run_cap!r}")

    spec = SweepSpec(
        method=method,
        metric_name=metric_name,
        goal=goal,
        parameters=parsed,
        early_terminate=_parse_early_terminate(cfg.get("early_terminate")),
        run_cap=run_cap,
        metric_target=target,
        raw=copy.deepcopy(dict(cfg)),
    )
    if method == "grid":
        _check_grid(spec)
    return spec


def _check_grid(spec: SweepSpec) -> None:
    for name, p in spec.parameters.items():
        if p.distribution not in _GRID_OK:
            raise _fail(
                f"parameters.{name}",
                f"grid search needs discrete parameters (value, values, int_uniform, q_uniform), "
                f"got {p.distribution}",
            )
        if p.probabilities is not None:
            raise _fail(f"parameters.{name}.probabilities", "is not allowed with grid search")
        if p.distribution == "q_uniform" and not p._step_aligned():
            raise _fail(f"parameters.{name}", "grid q_uniform needs min and max on multiples of q")
    size = math.prod(len(v) for v in spec.grid_space().values())
    if size > _MAX_GRID:
        raise _fail("parameters", f"grid has {size} points, more than {_MAX_GRID}")


def wandb_sweep_config(spec: SweepSpec) -> dict[str, Any]:
    """The dict handed to ``wandb.sweep``: the original declaration, deep-copied."""
    return copy.deepcopy(spec.raw)


__all__ = [
    "ParamSpec",
    "SweepConfigError",
    "SweepSpec",
    "parse_sweep_config",
    "wandb_sweep_config",
]
