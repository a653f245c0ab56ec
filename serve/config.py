"""Runtime settings of the API, read from the environment or `.env` (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from housing.signing.keys import KeyRing

SourceName = Literal["registry", "gcs", "local"]
SOURCE_NAMES: tuple[str, ...] = ("registry", "gcs", "local")
STREAMLIT_ORIGINS = ("http://localhost:8501", "http://127.0.0.1:8501")


def _split_commas(value: object) -> object:
    """Accept `a,b,c` (or a JSON-free list) for list settings given as one env string."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service; env var names are the field names in upper case."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", protected_namespaces=()
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    # Where the model comes from, tried in this order.
    model_sources: Annotated[tuple[SourceName, ...], NoDecode] = ("registry", "gcs", "local")
    mlflow_tracking_uri: str | None = None  # the registry source is configured only when set
    model_name: str = "housing_price_model"
    model_alias: str = "champion"
    gcs_bucket: str | None = None  # the GCS source is configured only when set
    gcs_prefix: str = "champion"
    gcs_endpoint_url: str | None = None  # e.g. a local emulator; STORAGE_EMULATOR_HOST also works
    gcs_project: str | None = None
    # The champion directory the register stage exports (never models/: the candidate).
    local_model_dir: Path = Path("champion")

    # Public keys that may sign a champion (PEM text with one or more blocks, and/or files).
    # None configured: verification is off (local development) and /api/v1/model says
    # "signed": false. Any configured: every source serves only bundles those keys signed.
    housing_verify_keys: str | None = None
    housing_verify_key_files: Annotated[tuple[str, ...], NoDecode] = ()
    _keyring: object = PrivateAttr(default=None)
    # A writable directory of the API's own where the newest promotion served per key and
    # registry is kept, so an older signed champion is refused after a restart too
    # (serve/replay.py). Unset: that memory ends with the process (a warning says so).
    replay_state_dir: Path | None = None

    # The feature log (serve/feature_log.py): every scored instance as a JSON line, written
    # off the request path, rotated at feature_log_max_bytes with feature_log_backups old
    # files kept (the bound: max_bytes * (backups + 1)). Unset directory: off.
    feature_log_dir: Path | None = None
    feature_log_sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    feature_log_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    feature_log_backups: int = Field(4, ge=0, le=100)
    feature_log_queue: int = Field(10_000, ge=1)
    # How often the log's thread takes what requests left for it (they never wake it), then
    # bins, shadow-scores and writes it as one group (docs/monitoring.md, measured).
    feature_log_interval_s: float = Field(0.05, gt=0.0, le=5.0)
    # How long a thread may hold the GIL before another waiting for it gets a turn
    # (sys.setswitchinterval; Python's default is 5 ms). The feature log's and the access
    # log's threads hold it in bursts; at 1 ms the event loop waits less behind them: at 8
    # connections p99 12-13 -> 9.8 ms and +15 % requests/s (docs/api.md, measured).
    gil_switch_interval_ms: float = Field(1.0, gt=0.0, le=100.0)
    # Live drift gauges (serve/drift.py): the last drift_window scored instances against the
    # model's reference, binned in the feature log's thread. 0 turns them off. The threshold
    # and the floor on instances are params.yaml's monitor section (a test keeps them equal);
    # GET /api/v1/monitoring reports a feature as drifted by them.
    drift_window: int = Field(2000, ge=0, le=1_000_000)
    drift_psi_threshold: float = Field(0.1, gt=0)
    drift_min_instances: int = Field(500, ge=1)
    # The shadow challenger (serve/shadow.py): with a registry configured, also load its
    # `challenger` (verified like the champion) and price every request with it off the
    # request path; its agreement goes to /metrics, the feature log and /api/v1/monitoring.
    shadow: bool = False

    # Request limits.
    max_batch: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # After a 413 or 415 the rest of the body is read and discarded before the connection
    # closes, however large, for at most BODY_LINGER_S in all and BODY_LINGER_IDLE_S between
    # two reads (nginx's lingering_time and lingering_timeout, same defaults).
    body_linger_s: float = Field(30.0, gt=0.0, le=600.0)
    body_linger_idle_s: float = Field(5.0, gt=0.0, le=600.0)

    # Operations.
    reload_interval_s: float = Field(30.0, ge=0.0)  # 0 turns hot reload off
    admin_token: SecretStr | None = None  # POST /api/v1/admin/reload is disabled without it
    cors_origins: Annotated[tuple[str, ...], NoDecode] = STREAMLIT_ORIGINS
    load_in_background: bool = True  # listen at once; /ready turns 200 when a model loads
    # After SIGTERM: /ready answers 503 at once while requests are still served for this
    # long, so a load balancer stops routing here before the listener closes.
    shutdown_grace_s: float = Field(5.0, ge=0.0)
    # POST /api/v1/admin/reload answers 503 when the reload (waiting for the model lock
    # included) takes longer; a load already running goes on in the background.
    reload_timeout_s: float = Field(30.0, gt=0.0)
    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True
    context_points: int = Field(2000, ge=0, le=20_000)

    # Prediction statistics to Weights & Biases (never on the request path).
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"
    wandb_project: str = "housing-price-serving"
    prediction_log_queue: int = Field(1000, ge=1)
    prediction_log_flush_s: float = Field(10.0, gt=0.0)

    @field_validator("model_sources", "cors_origins", "housing_verify_key_files", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator(
        "mlflow_tracking_uri",
        "gcs_bucket",
        "gcs_endpoint_url",
        "admin_token",
        "replay_state_dir",
        "feature_log_dir",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _read_keys(self) -> Settings:
        """Parse the verification keys now, so a bad key fails start-up with one line."""
        from housing.signing.keys import KeyConfigError, KeyRing

        try:
            self._keyring = KeyRing.from_settings(
                self.housing_verify_keys, self.housing_verify_key_files
            )
        except KeyConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def verify_keys(self) -> KeyRing:
        """The trusted public keys (empty: verification off)."""
        return self._keyring  # type: ignore[return-value]

    @property
    def registry_configured(self) -> bool:
        return "registry" in self.model_sources and bool(self.mlflow_tracking_uri)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests pass their own to `create_app`)."""
    return Settings()
