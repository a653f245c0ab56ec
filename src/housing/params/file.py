"""The whole ``params.yaml``: every section's model plus the rules that span sections.

``housing-params check`` runs :func:`check` before ``make pipeline`` and in the workflow; a
stage checks only its own section (``housing.stage.params``), so the cross-section rules
below are this module's alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from housing.params.base import PARAMS_FILE, ParamsError, invalid, read, validate
from housing.params.download import DownloadParams
from housing.params.featurize import FeaturizeParams
from housing.params.monitor import MonitorParams
from housing.params.preprocess import PreprocessParams
from housing.params.register import RegisterParams
from housing.params.select import SelectParams
from housing.params.split import SplitParams
from housing.params.sweep import SweepParams

SECTIONS: dict[str, type[BaseModel]] = {
    "download": DownloadParams,
    "split": SplitParams,
    "preprocess": PreprocessParams,
    "featurize": FeaturizeParams,
    "select": SelectParams,
    "sweep": SweepParams,
    "register": RegisterParams,
    "monitor": MonitorParams,
}
SCHEMA_FILE = Path("params.schema.json")


class ParamsFile(BaseModel):
    """Every knob of the pipeline, one section per stage (docs/pipeline.md)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        title="housing params.yaml",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    download: DownloadParams
    split: SplitParams
    preprocess: PreprocessParams
    featurize: FeaturizeParams
    select: SelectParams
    sweep: SweepParams
    # BaseModel has a `register` attribute: the field keeps the section's name as its alias.
    register_: RegisterParams = Field(alias="register")
    monitor: MonitorParams

    @model_validator(mode="after")
    def _across(self) -> ParamsFile:
        if self.select.seed == self.sweep.seed:
            raise invalid(
                "select.seed",
                f"must differ from sweep.seed ({self.sweep.seed}): the sweep's best score "
                "must come from folds other than those that chose the family",
            )
        choices = {
            "preprocess.seed": self.preprocess.seed,
            "featurize.seed": self.featurize.seed,
            "select.seed": self.select.seed,
            "sweep.seed": self.sweep.seed,
        }
        for key, seed in choices.items():
            if seed == self.register_.cv_seed:
                raise invalid(
                    "register.cv_seed",
                    f"must differ from {key} ({seed}): a score on the folds a choice was "
                    "made on is optimistic",
                )
        missing = [f for f in self.select.families if f not in self.sweep.spaces]
        if missing:
            raise invalid(
                "select.families", f"{', '.join(missing)} has no search space in sweep.spaces"
            )
        return self


def check(path: Path = PARAMS_FILE) -> ParamsFile:
    """The whole file, validated: every section, then the rules across sections.

    Each section is validated on its own first, so an error names the section's key
    (``params.yaml sweep.n_trials``) exactly as the stage would; problems of every section
    are reported together.
    """
    data = read(path)
    problems: list[str] = []
    unknown = sorted(set(data) - set(SECTIONS))
    problems += [
        f"{path} {name}: unknown section (allowed: {', '.join(SECTIONS)})" for name in unknown
    ]
    for name, model in SECTIONS.items():
        if name not in data:
            problems.append(f"{path} {name}: missing section")
            continue
        try:
            validate(data[name], model, section=name, source=path)
        except ParamsError as exc:
            problems += exc.problems
    if problems:
        raise ParamsError(problems)
    return _across(data, path)


def _across(data: dict[str, Any], path: Path) -> ParamsFile:
    from pydantic import ValidationError

    from housing.params.base import problems

    try:
        return ParamsFile.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(problems(exc, ParamsFile, section="", source=path)) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``params.yaml`` (``params.schema.json``), for editors and CI."""
    return ParamsFile.model_json_schema()
