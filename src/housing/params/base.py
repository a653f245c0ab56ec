"""What every section's schema shares: strict models, one-line errors, loading a section.

A section model is a pydantic model with ``extra="forbid"`` (a misspelt key is an error, not
a silently ignored knob) and ``strict=True`` (``"abc"`` or ``true`` is not a number; an
integer is accepted where a float is expected, as YAML writes ``60`` for ``60.0``).

Errors name the key as ``params.yaml`` spells it and say what was expected, in one line:
``params.yaml sweep.n_trials: must be an integer >= 1, got -5``. The expectation is read from
the model's own JSON Schema, so the message and the schema editors see cannot disagree.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

PARAMS_FILE = Path("params.yaml")

# Seeds feed numpy's and scikit-learn's generators, which take 32-bit unsigned seeds.
SEED_MAX = 2**32 - 1
# Cap on how many problems one message lists; the rest are counted.
_MAX_LISTED = 5


class ParamsError(ValueError):
    """Invalid parameters: one line per problem, each naming its key."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listed = self.problems[:_MAX_LISTED]
        more = len(self.problems) - len(listed)
        super().__init__("\n".join(listed + ([f"... and {more} more"] if more > 0 else [])))


class Section(BaseModel):
    """Base of every section model: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def invalid(key: str, problem: str) -> PydanticCustomError:
    """An error a model validator raises about ``key`` (a dotted path below the model)."""
    return PydanticCustomError("params", "{key}: {problem}", {"key": key, "problem": problem})


def ordered(values: Sequence[float], key: str, *, what: str = "increasing") -> None:
    """Fail unless ``values`` strictly increase (the order the stages read them in)."""
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise invalid(key, f"must be strictly {what}, got {list(values)}")


# -- messages ------------------------------------------------------------------------------


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _child(schema: Mapping[str, Any], step: str | int, defs: Mapping[str, Any]) -> Any:
    """The schema of ``step`` (a key or a list index) below ``schema``, or None if unknown."""
    schema = _resolve(schema, defs)
    for option in schema.get("anyOf", ()):
        found = _child(option, step, defs)
        if found is not None:
            return found
    if isinstance(step, int):
        return schema.get("items")
    if step in schema.get("properties", {}):
        return schema["properties"][step]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None


def _number(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def describe(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None) -> str:
    """What ``schema`` accepts, in words: ``an integer >= 1``, ``one of median, mean``."""
    defs = defs or {}
    schema = _resolve(schema, defs)
    if "anyOf" in schema:  # an optional key's null is not worth naming
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        return " or ".join(describe(option, defs) for option in options)
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type")
    words = {
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "object": "a mapping",
        "null": "null",
    }.get(kind, "")
    if kind == "string":
        words = "a non-empty string" if schema.get("minLength") else "a string"
        if "pattern" in schema:
            words += f" matching {schema['pattern']}"
    elif kind == "array":
        items = describe(schema["items"], defs) if "items" in schema else "values"
        words = f"a list of {items}"
        if schema.get("minItems"):
            words = f"a non-empty list of {items}"
        if schema.get("uniqueItems"):
            words += ", each once"
    bounds = [
        f"{op} {_number(schema[key])}"
        for key, op in (
            ("exclusiveMinimum", ">"),
            ("minimum", ">="),
            ("exclusiveMaximum", "<"),
            ("maximum", "<="),
        )
        if key in schema
    ]
    return " ".join([words or "a value", *([" and ".join(bounds)] if bounds else [])])


def _got(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _path(section: str, loc: Sequence[str | int]) -> str:
    """``section`` and ``loc`` as params.yaml reads: ``sweep.bagging.sizes[0]``."""
    text = section
    for step in loc:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def problems(
    exc: ValidationError, model: type[BaseModel], *, section: str, source: Path
) -> list[str]:
    """One line per error of ``exc``: ``<source> <section.key>: <what was wrong>``."""
    root = model.model_json_schema()
    defs = root.get("$defs", {})
    lines = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "params":  # a model validator's message, about a key below the model
            where, text = _path(section, [*loc, ctx["key"]]), str(ctx["problem"])
        elif kind == "extra_forbidden":
            parent: Any = root
            for step in loc[:-1]:
                parent = _child(parent, step, defs) or {}
            allowed = sorted(_resolve(parent, defs).get("properties", {}))
            where = _path(section, loc)
            text = "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif kind == "missing":
            where, text = _path(section, loc), "is required"
        elif kind == "value_error":  # a field validator's ValueError
            where = _path(section, loc)
            text = str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
        else:
            node: Any = root
            for step in loc:
                node = _child(node, step, defs) if node is not None else None
            where = _path(section, loc)
            expected = describe(node, defs) if node is not None else err["msg"].lower()
            text = f"must be {expected}, got {_got(err['input'])}"
        lines.append(f"{source} {where}: {text}")
    return lines


# -- loading -------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def validate(data: Any, model: type[M], *, section: str, source: Path = PARAMS_FILE) -> M:
    """``data`` as a ``model``, or a :class:`ParamsError` naming each bad key."""
    if not isinstance(data, Mapping):
        raise ParamsError([f"{source} {section}: must be a mapping of keys, got {_got(data)}"])
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ParamsError(problems(exc, model, section=section, source=source)) from None


def read(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """The whole parameters file as a mapping, or a one-line :class:`ParamsError`."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError([f"{path}: no such file"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(
            [f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError([f"{path}: must be a mapping of sections, got {_got(data)}"])
    return data


def raw_section(section: str, path: Path = PARAMS_FILE) -> dict[str, Any]:
    """The ``section`` of ``path`` as written (a mapping), without a schema."""
    data = read(path)
    if section not in data:
        raise ParamsError([f"{path} {section}: missing section"])
    value = data[section]
    if not isinstance(value, Mapping):
        raise ParamsError([f"{path} {section}: must be a mapping of keys, got {_got(value)}"])
    return dict(value)


def load(section: str, model: type[M], path: Path = PARAMS_FILE) -> M:
    """The ``section`` of ``path``, validated by ``model`` before a stage does any work."""
    return validate(raw_section(section, path), model, section=section, source=path)
