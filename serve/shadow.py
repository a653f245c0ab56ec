"""The shadow challenger: the registry's ``challenger`` prices what the champion priced.

With ``SHADOW=true`` and a registry configured, a daemon thread loads the registry's
``challenger`` (verified like the champion: signature, signed record naming the version and
the alias, bundle sha256s; ``serve.sources.build.build_challenger_source``) and looks for a
new one every ``RELOAD_INTERVAL_S``. While there is none, or it cannot be verified, the shadow
stays idle and says why (``shadow_loaded`` 0, ``GET /api/v1/monitoring``).

Scoring is an observer of the feature log (serve/feature_log.py): it runs in the log's writer
thread, never on the request path, and scores every group of batches the thread takes in one
call. For each instance it records how the challenger's price compares with the champion's:

- ``shadow_scored_total``: instances priced by both;
- ``shadow_abs_diff_dollars_total`` and ``shadow_rel_diff_total``: sums of |challenger -
  champion| in USD and relative to the champion's price (means: divide by the count);
- ``shadow_inside_interval_total``: challenger prices inside the champion's interval;

and adds ``shadow_version`` and ``shadow_price`` to each feature-log line, from which
``housing-monitor`` reports the agreement and ``housing-registry show --alias challenger``
shows it as the challenger's evidence. The API never writes to the registry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from serve.feature_log import Batch

logger = logging.getLogger(__name__)


class Shadow:
    """The loaded challenger (if any), its loader thread, and the agreement so far."""

    name = "shadow"

    def __init__(self, source: Any, metrics: Any, interval_s: float) -> None:
        self.source = source
        self.metrics = metrics
        self.interval_s = interval_s
        self.model: Any = None  # a serve.loaded_model.LoadedModel, swapped whole
        self.status = "not loaded yet"
        self._fingerprint: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadow-loader", daemon=True)
        self._lock = threading.Lock()
        self._totals = {"instances": 0, "abs": 0.0, "rel": 0.0, "inside": 0, "skipped": 0}
        self._champion_version: str | None = None

    # --- loading, in its own thread ------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            self.refresh()
            if self.interval_s <= 0 or self._stop.wait(self.interval_s):
                return

    def refresh(self) -> None:
        """Load the registry's challenger if it changed; go idle if there is none."""
        from serve.sources.base import SourceError

        try:
            fingerprint = self.source.fingerprint()
            if fingerprint == self._fingerprint and self.model is not None:
                return
            model = self.source.load()
        except SourceError as exc:
            self._idle(str(exc))
            return
        except Exception as exc:  # never the API's problem: logged, idle, retried
            logger.exception("shadow challenger: load failed")
            self._idle(f"load failed: {exc}")
            return
        self._fingerprint = fingerprint
        self.model = model
        ident = model.identity
        self.status = f"scoring with {ident.name} v{ident.version}"
        self.metrics.shadow_loaded.set(1)
        self.metrics.shadow_info.clear()
        signed = "true" if ident.signed else "false"
        self.metrics.shadow_info.labels(str(ident.version), signed).set(1)
        with self._lock:
            self._totals = dict.fromkeys(self._totals, 0)
        logger.info("shadow challenger: %s (signed: %s)", self.status, ident.signed)

    def _idle(self, why: str) -> None:
        if self.model is not None or why != self.status:
            logger.info("shadow challenger idle: %s", why)
        self.model = None
        self._fingerprint = None
        self.status = f"idle: {why}"
        self.metrics.shadow_loaded.set(0)
        self.metrics.shadow_info.clear()

    # --- scoring, in the feature log's thread --------------------------------------------

    def __call__(self, batches: Sequence[Batch]) -> list[dict[str, Any] | None] | None:
        challenger = self.model
        if challenger is None:
            return None
        version = challenger.identity.version
        wanted = [
            b
            for b in batches
            if b.numeric is not None and b.model is not None and b.model_version != version
        ]
        if not wanted:
            return None
        index = {c: i for i, c in enumerate(challenger.predictor.categories)}
        numeric, categories, spans, keep_rows = [], [], {}, []
        start = 0
        for b in wanted:
            names = b.model.predictor.categories
            codes = [index.get(names[i]) for i in b.categories]
            keep = np.array([c is not None for c in codes])
            numeric.append(np.asarray(b.numeric)[keep])
            categories += [c for c in codes if c is not None]
            n = int(keep.sum())
            spans[id(b)] = (start, start + n)
            keep_rows.append(keep)
            start += n
        if start == 0:
            return None
        prices = np.asarray(challenger.predict(np.vstack(numeric), categories), float)
        out: list[dict[str, Any] | None] = []
        agree = {"abs": 0.0, "rel": 0.0, "inside": 0, "n": 0, "skipped": 0}
        by_batch = dict(zip((id(b) for b in wanted), keep_rows, strict=True))
        for b in batches:
            if id(b) not in spans:
                out.append(None)
                continue
            lo, hi = spans[id(b)]
            keep = by_batch[id(b)]
            mine = prices[lo:hi]
            champion = np.asarray(b.prices, float)[keep]
            low = np.asarray(b.lows, float)[keep]
            high = np.asarray(b.highs, float)[keep]
            diff = np.abs(mine - champion)
            agree["abs"] += float(diff.sum())
            agree["rel"] += float((diff / champion).sum())
            agree["inside"] += int(((mine >= low) & (mine <= high)).sum())
            agree["n"] += len(mine)
            agree["skipped"] += int((~keep).sum())
            shadow_prices: list[float | None] = [None] * len(keep)
            for i, price in zip(np.flatnonzero(keep), mine.round(2).tolist(), strict=True):
                shadow_prices[i] = price
            out.append({"shadow_version": version, "shadow_price": shadow_prices})
            self._champion_version = b.model_version
        m = self.metrics
        m.shadow_scored.inc(agree["n"])
        m.shadow_abs_diff.inc(agree["abs"])
        m.shadow_rel_diff.inc(agree["rel"])
        m.shadow_inside.inc(agree["inside"])
        with self._lock:
            t = self._totals
            t["instances"] += agree["n"]
            t["abs"] += agree["abs"]
            t["rel"] += agree["rel"]
            t["inside"] += agree["inside"]
            t["skipped"] += agree["skipped"]
        return out

    def snapshot(self) -> dict[str, Any]:
        """The challenger and its agreement with the champion since it was loaded."""
        model = self.model
        with self._lock:
            t = dict(self._totals)
        n = t["instances"]
        return {
            "loaded": model is not None,
            "status": self.status,
            "challenger_version": None if model is None else model.identity.version,
            "champion_version": self._champion_version,
            "signed": None if model is None else model.identity.signed,
            "instances": n,
            "skipped": t["skipped"],
            "mean_abs_diff": t["abs"] / n if n else None,
            "mean_rel_diff": t["rel"] / n if n else None,
            "inside_interval_share": t["inside"] / n if n else None,
        }
