"""The FastAPI application: `create_app(settings)`, its lifespan, and its middleware.

`uvicorn serve.main:app` serves the module-level app; building it does no I/O (settings,
sources and the model are resolved in the lifespan), so importing this module is cheap.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType

import anyio
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from serve.config import Settings, get_settings
from serve.errors import install_error_handlers
from serve.logs import configure_logging
from serve.metrics import ServeMetrics
from serve.middleware import Linger, ObservabilityMiddleware, RequestGuardMiddleware
from serve.model_store import ModelStore, Reloader
from serve.prediction_log import PredictionLogger, WandbSink
from serve.responses import OrjsonResponse
from serve.routes import admin, health, metrics, model, monitoring, predict
from serve.shadow import Shadow
from serve.sources import build_sources
from serve.state import ServeState

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Prices California districts with the model the pipeline registered (MLflow alias
`champion` by default, else a GCS object, else the local `models/` bundle).
Field bounds and categories come from the served model's data contract
(`GET /api/v1/contract`). Every error answers `{"error": {...}, "request_id": ...}`.
"""


class _LazySettings:
    """Settings resolved on first use (in the lifespan), so building the app reads nothing."""

    def __init__(self, settings: Settings | None) -> None:
        self._settings = settings

    def __call__(self) -> Settings:
        if self._settings is None:
            self._settings = get_settings()
        return self._settings


def _cors(settings: Callable[[], Settings]) -> Callable[[ASGIApp], ASGIApp]:
    """CORS from the settings' allowlist (GET/POST, no credentials), built on first use."""

    def build(app: ASGIApp) -> ASGIApp:
        return CORSMiddleware(
            app,
            allow_origins=list(settings().cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            allow_credentials=False,
            max_age=600,
        )

    return build


def _install_drain_handler(store: ModelStore, grace_s: float) -> None:
    """On SIGTERM, turn /ready to 503 first; hand over to uvicorn's shutdown after ``grace_s``.

    Uvicorn then stops accepting connections, lets in-flight requests finish and runs the
    lifespan shutdown. Only possible in the main thread (not under a test client).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if store.draining:
            previous(sig, frame)
            return
        store.draining = True
        logger.info("SIGTERM: readiness off; shutting down in %.1f s", grace_s)
        if grace_s > 0:
            loop.call_soon_threadsafe(loop.call_later, grace_s, previous, sig, frame)
        else:
            previous(sig, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _settle_heap() -> None:
    """Move everything start-up built (modules, the app, the model) out of the collector's
    reach: a full collection over it took tens of milliseconds, a p99 spike per request it
    lands in. Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


def _start_loading(store: ModelStore, reloader: Reloader, *, background: bool) -> None:
    def run() -> None:
        store.load_initial()
        _settle_heap()
        reloader.start()

    store.loading = True
    threading.Thread(target=run, name="model-initial-load", daemon=True).start()


def _log_verification(cfg: Settings) -> None:
    keys = cfg.verify_keys
    if len(keys):
        logger.info(
            "signature verification on: %d trusted key(s) %s",
            len(keys),
            ", ".join(k[:12] + "…" for k in keys.ids),
        )
    else:
        logger.warning(
            "signature verification OFF: no HOUSING_VERIFY_KEYS or HOUSING_VERIFY_KEY_FILES; "
            'champions are integrity-checked only and reported as "signed": false'
        )


def _shadow(cfg: Settings, metrics: ServeMetrics) -> Shadow | None:
    """The shadow challenger when SHADOW is on and a registry is configured (else None)."""
    if not cfg.shadow:
        return None
    from serve.sources.build import build_challenger_source

    source = build_challenger_source(cfg)
    if source is None:
        logger.warning("SHADOW is on but no MLFLOW_TRACKING_URI is set: no challenger to load")
        return None
    from serve.shadow import Shadow

    return Shadow(source, metrics, cfg.reload_interval_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; ``settings`` default to the environment (read in the lifespan)."""
    resolve = _LazySettings(settings)
    serve_metrics = ServeMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = resolve()
        configure_logging(cfg.log_level, json=cfg.log_json)
        sys.setswitchinterval(cfg.gil_switch_interval_ms / 1000)  # process-wide: one app
        sources, skipped = build_sources(cfg)
        _log_verification(cfg)
        from serve.replay import open_marks

        replay = open_marks(cfg.replay_state_dir) if len(cfg.verify_keys) else None
        store = ModelStore(sources, serve_metrics, skipped=skipped, replay=replay)
        reloader = Reloader(store, cfg.reload_interval_s)
        pred_log = None
        if cfg.wandb_mode != "disabled":
            sink = WandbSink(
                mode=cfg.wandb_mode,
                project=cfg.wandb_project,
                config={"model_sources": list(cfg.model_sources)},
            )
            pred_log = PredictionLogger(
                sink,
                maxsize=cfg.prediction_log_queue,
                flush_s=cfg.prediction_log_flush_s,
                on_drop=serve_metrics.prediction_log_dropped.inc,
                close_sink=sink.close,
            )
            pred_log.start()
        feature_log = None
        drift = None
        observers: list = []
        if cfg.drift_window > 0:
            from serve.drift import DriftObserver

            drift = DriftObserver(serve_metrics, cfg.drift_window)
            observers.append(drift)
        shadow = _shadow(cfg, serve_metrics)
        if shadow is not None:
            observers.append(shadow)
        if cfg.feature_log_dir is not None or observers:
            from serve.feature_log import FeatureLog

            feature_log = FeatureLog(
                cfg.feature_log_dir,
                observers=observers,
                interval_s=cfg.feature_log_interval_s,
                sample_rate=cfg.feature_log_sample_rate,
                max_bytes=cfg.feature_log_max_bytes,
                backups=cfg.feature_log_backups,
                queue_size=cfg.feature_log_queue,
                on_drop=serve_metrics.feature_log_dropped.inc,
                on_error=serve_metrics.feature_log_errors.inc,
                on_written=serve_metrics.feature_log_written.inc,
            )
            feature_log.start()
        app.state.serve = ServeState(
            cfg, serve_metrics, store, reloader, pred_log, feature_log, drift, shadow
        )
        if shadow is not None:
            shadow.start()
        logger.info(
            "model sources in order: %s",
            ", ".join(s.describe() for s in sources) or "none configured",
        )
        if cfg.load_in_background:
            _start_loading(store, reloader, background=True)
        else:
            await anyio.to_thread.run_sync(store.load_initial)
            _settle_heap()
            reloader.start()
        _install_drain_handler(store, cfg.shutdown_grace_s)
        try:
            yield
        finally:
            store.draining = True
            reloader.stop()
            if shadow is not None:
                shadow.stop()
            if pred_log is not None:
                await anyio.to_thread.run_sync(pred_log.stop)
            if feature_log is not None:
                await anyio.to_thread.run_sync(feature_log.stop)
            logger.info("API stopped")

    app = FastAPI(
        title="California housing price API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    install_error_handlers(app)
    routers = (health, predict, model, monitoring, admin, metrics)
    for module in routers:
        app.include_router(module.router)
    # Added innermost first. CORS wraps the guard (applied by the observability middleware
    # to requests with an Origin), so the guard's 413/415 carry CORS headers.
    app.add_middleware(
        RequestGuardMiddleware,
        max_body_bytes=lambda: resolve().max_body_bytes,
        linger=lambda: Linger(resolve().body_linger_s, resolve().body_linger_idle_s),
    )
    app.add_middleware(
        ObservabilityMiddleware,
        metrics=lambda: serve_metrics,
        access_log=lambda: resolve().access_log,
        cors=_cors(resolve),
    )
    return app


app = create_app()
