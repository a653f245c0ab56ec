"""Request and response bodies. Types live here; bounds and categories come from the loaded
model's data contract at request time (see `serve.validation`), so they are never copied."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# strict: a string or boolean is not a number; allow_inf_nan=False: NaN/Infinity are refused.
_NUM: dict[str, Any] = {"strict": True, "allow_inf_nan": False}


class InstanceBase(BaseModel):
    """The nine input fields of one district (census block group)."""

    model_config = ConfigDict(extra="forbid")

    longitude: float = Field(
        ..., description="Degrees east (negative in California).", examples=[-122.23], **_NUM
    )
    latitude: float = Field(..., description="Degrees north.", examples=[37.88], **_NUM)
    housing_median_age: float = Field(
        ..., description="Median age of the houses, years.", examples=[41.0], **_NUM
    )
    total_rooms: float = Field(..., description="Rooms in the district.", examples=[880.0], **_NUM)
    total_bedrooms: float | None = Field(
        None,
        description="Bedrooms in the district; null or absent when unknown (imputed).",
        examples=[129.0],
        **_NUM,
    )
    population: float = Field(..., description="Residents.", examples=[322.0], **_NUM)
    households: float = Field(..., description="Households.", examples=[126.0], **_NUM)
    median_income: float = Field(
        ..., description="Median income, tens of thousands of USD.", examples=[8.3252], **_NUM
    )
    ocean_proximity: str = Field(
        ...,
        max_length=64,
        strict=True,
        examples=["NEAR BAY"],
        description="One of the contract's categories; case and spaces are ignored.",
    )


class InstanceCreate(InstanceBase):
    """One district to price."""


class PredictRequest(BaseModel):
    """1 to MAX_BATCH districts to price."""

    model_config = ConfigDict(extra="forbid")

    instances: list[InstanceCreate] = Field(..., min_length=1)


class IntervalPublic(BaseModel):
    """A conformal prediction interval around one price (docs/intervals.md)."""

    low: float = Field(..., description="Low end, USD.", examples=[338529.73])
    high: float = Field(..., description="High end, USD.", examples=[555006.51])
    level: float = Field(
        ...,
        gt=0,
        lt=1,
        description="Share of districts whose value such an interval contains (0.9 = 90 %), "
        "calibrated on out-of-fold residuals; the model's, not the request's.",
        examples=[0.9],
    )


class PredictionPublic(BaseModel):
    predicted_price: float = Field(
        ..., description="Predicted median house value, USD.", examples=[431632.99]
    )
    interval: IntervalPublic = Field(
        ..., description="low <= predicted_price <= high; the width grows with the price."
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "predictions": [
                        {
                            "predicted_price": 431632.99,
                            "interval": {"low": 338529.73, "high": 555006.51, "level": 0.9},
                        }
                    ],
                    "model_name": "housing_price_model",
                    "model_version": "1",
                    "model_alias": "champion",
                    "request_id": "75abb17c625a40e089133b44d872c745",
                }
            ]
        }
    )

    predictions: list[PredictionPublic]
    model_name: str
    model_version: str
    model_alias: str | None
    request_id: str | None


class ModelPublic(BaseModel):
    """Identity and lineage of the served model."""

    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    git_commit: str | None = None
    data_md5: str | None = None
    sha256: str | None = None
    source: str | None = None
    source_detail: str | None = None  # how the source answered, e.g. "registry (sqlite): ..."
    signed: bool = Field(
        False, description="A trusted key's signature covers the bundle and its promotion record."
    )
    key_id: str | None = None
    promotion: dict[str, Any] | None = Field(
        None, description="The promotion record: action, sequence, who, timestamp, decision."
    )
    verification: str = Field(
        ..., description="'on' (N trusted keys) or 'off' (no keys configured: integrity only)."
    )
    loaded_at: str | None = None
    last_reload_error: str | None = None
    last_reload_check_at: str | None = None
    load_errors: list[str] = Field(default_factory=list)
    max_batch: int = Field(..., description="Most instances one POST /api/v1/predict accepts.")
    scorer: str | None = Field(
        None,
        description="What computes the booster's scores: 'compiled' (the signed champion's "
        "compiled predictor) or 'lightgbm' (its model text).",
    )


class HealthPublic(BaseModel):
    status: str = "ok"


class ReadyPublic(BaseModel):
    status: str = "ready"
    model_version: str


class ContextPoint(BaseModel):
    latitude: float
    longitude: float
    value: float = Field(..., description="Median house value of the training district, USD.")


class ContextPublic(BaseModel):
    """Training districts (a deterministic subsample) for map context."""

    points: list[ContextPoint]
    count: int
    total: int


class ReloadPublic(BaseModel):
    reloaded: bool
    model_version: str | None
    error: str | None = None


class FieldErrorPublic(BaseModel):
    field: str
    reason: str


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    fields: list[FieldErrorPublic] = Field(default_factory=list)


class ErrorPublic(BaseModel):
    """Every 4xx/5xx answer."""

    error: ErrorDetail
    request_id: str | None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": text}
    for status, text in {
        400: "Malformed JSON",
        413: "Body over MAX_BODY_BYTES",
        415: "Content-Type is not application/json",
        422: "A field is missing, of the wrong type, out of range or unknown",
        500: "Model error (generic message and request id only)",
        503: "No model loaded",
    }.items()
}


class DriftFeaturePublic(BaseModel):
    psi: float = Field(description="Population stability index over the window.")
    drifted: bool = Field(description="PSI above the threshold, with enough instances.")


class DriftPublic(BaseModel):
    available: bool = Field(description="False: drift gauges off, or no reference in the model.")
    instances: int = Field(description="Instances in the window now.")
    window: int = Field(description="The window's capacity (DRIFT_WINDOW).")
    threshold: float
    min_instances: int
    enough: bool = Field(description="The window holds at least min_instances.")
    features: dict[str, DriftFeaturePublic] = Field(default_factory=dict)
    prediction: DriftFeaturePublic | None = None


class MonitoringPublic(BaseModel):
    drift: DriftPublic
    shadow: dict[str, Any] | None = Field(
        None, description="The shadow challenger's agreement with the champion (SHADOW=on)."
    )
    predict_requests: int = Field(description="Prediction requests answered, any status.")
    refused_by_field: dict[str, int] = Field(
        description="Requests refused (4xx) by the field they named."
    )
