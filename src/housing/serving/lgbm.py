"""LightGBM's C library through ctypes, without importing the ``lightgbm`` package.

``import lightgbm`` imports scikit-learn and pandas when they are installed (~2 s); the
shared library itself loads in milliseconds. We locate ``lib_lightgbm.so`` with
``importlib.util.find_spec`` (which does not run the package) and call the C API: load a
model from its text, predict raw scores for row-major float64 matrices, single-threaded.
Every return code is checked; a failure raises :class:`LightGBMError` with
``LGBM_GetLastError``'s message.
"""

from __future__ import annotations

import ctypes
import importlib.util
import queue
import sys
import threading
from functools import cache
from pathlib import Path

import numpy as np

C_API_DTYPE_FLOAT64 = 1
C_API_PREDICT_NORMAL = 0
C_API_PREDICT_RAW_SCORE = 1
PREDICT_PARAMS = b"num_threads=1"

# Batches are scored in blocks of trees: a block stays in the CPU cache while every row
# walks it, instead of each row streaming the whole forest through the cache (the
# measured gain is in the report of docs/serving-bundle.md). Single rows use one call.
TREE_BLOCK = 100
BLOCK_MIN_ROWS = 8
# Handles for batches, each used by one thread at a time: the API scores batches in two
# threads, which then run side by side (~30 ms and ~3 MB per handle of the 340-tree model).
BATCH_HANDLES = 2


class LightGBMError(RuntimeError):
    """The LightGBM library is missing or refused a call."""


def library_path() -> Path:
    """Path of lib_lightgbm inside the installed ``lightgbm`` package (not imported)."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise LightGBMError("the lightgbm package is not installed")
    names = {"win32": "lib_lightgbm.dll", "darwin": "lib_lightgbm.dylib"}
    name = names.get(sys.platform, "lib_lightgbm.so")
    for location in spec.submodule_search_locations:
        for candidate in (Path(location) / "lib" / name, Path(location) / name):
            if candidate.is_file():
                return candidate
    raise LightGBMError(f"{name} not found in the lightgbm package")


@cache
def library() -> ctypes.CDLL:
    lib = ctypes.cdll.LoadLibrary(str(library_path()))
    lib.LGBM_GetLastError.restype = ctypes.c_char_p
    return lib


def _check(code: int) -> None:
    if code != 0:
        message = library().LGBM_GetLastError().decode("utf-8", "replace")
        raise LightGBMError(f"LightGBM: {message}")


class Booster:
    """A LightGBM model loaded from its text; predicts raw scores (one thread)."""

    def __init__(self, model_text: str) -> None:
        lib = library()
        self._lib = lib
        text = ctypes.c_char_p(model_text.encode("utf-8"))
        # Handles of the same model. A prediction over an iteration range (the tree blocks
        # below) re-initialises the handle's predictor, shared state that a concurrent call
        # on the same handle, or a fast single-row config made earlier on it, would follow:
        # single rows get their own handle, whose range never changes, and each batch takes
        # a handle of the pool for itself, so batches on two threads run side by side and a
        # single row never waits for a batch.
        self._handles = [self._load(text) for _ in range(BATCH_HANDLES)]
        self._handle = self._handles[0]
        self._pool: queue.SimpleQueue[ctypes.c_void_p] = queue.SimpleQueue()
        for handle in self._handles:
            self._pool.put(handle)
        self._row_handle = self._load(text)
        self._fast = ctypes.c_void_p()
        self._row_lock = threading.Lock()
        n_features, n_models, n_classes = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(n_features)))
        _check(lib.LGBM_BoosterNumberOfTotalModel(self._handle, ctypes.byref(n_models)))
        _check(lib.LGBM_BoosterGetNumClasses(self._handle, ctypes.byref(n_classes)))
        if n_classes.value != 1:
            raise LightGBMError(f"expected a single-output model, got {n_classes.value} classes")
        self.n_features = n_features.value
        self.num_trees = n_models.value
        _check(
            lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._row_handle,
                ctypes.c_int(C_API_PREDICT_RAW_SCORE),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(C_API_DTYPE_FLOAT64),
                ctypes.c_int32(self.n_features),
                ctypes.c_char_p(PREDICT_PARAMS),
                ctypes.byref(self._fast),
            )
        )

    def _load(self, text: ctypes.c_char_p) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        iterations = ctypes.c_int(0)
        _check(
            self._lib.LGBM_BoosterLoadModelFromString(
                text, ctypes.byref(iterations), ctypes.byref(handle)
            )
        )
        return handle

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is None:
            return
        fast = getattr(self, "_fast", None)
        if fast is not None and fast.value:
            lib.LGBM_FastConfigFree(fast)
        for handle in [*getattr(self, "_handles", ()), getattr(self, "_row_handle", None)]:
            if handle is not None and handle.value:
                lib.LGBM_BoosterFree(handle)

    def _predict_mat(
        self, handle: ctypes.c_void_p, X: np.ndarray, start: int, count: int
    ) -> np.ndarray:
        """One LightGBM call on ``handle``, which the caller holds alone."""
        out = np.empty(X.shape[0], dtype=np.float64)
        out_len = ctypes.c_int64(0)
        _check(
            self._lib.LGBM_BoosterPredictForMat(
                handle,
                X.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(C_API_DTYPE_FLOAT64),
                ctypes.c_int32(X.shape[0]),
                ctypes.c_int32(X.shape[1]),
                ctypes.c_int(1),
                ctypes.c_int(C_API_PREDICT_RAW_SCORE),
                ctypes.c_int(start),
                ctypes.c_int(count),
                ctypes.c_char_p(PREDICT_PARAMS),
                ctypes.byref(out_len),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        if out_len.value != X.shape[0]:
            raise LightGBMError(f"LightGBM returned {out_len.value} scores for {X.shape[0]} rows")
        return out

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        """Raw scores of the rows of ``X`` (n, n_features)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a (n, {self.n_features}) matrix, got {X.shape}")
        n = X.shape[0]
        if n == 0:
            return np.empty(0)
        if n == 1:
            out = np.empty(1, dtype=np.float64)
            out_len = ctypes.c_int64(0)
            with self._row_lock:
                _check(
                    self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                        self._fast,
                        X.ctypes.data_as(ctypes.c_void_p),
                        ctypes.byref(out_len),
                        out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                    )
                )
            return out
        handle = self._pool.get()  # waits only when every handle is scoring a batch
        try:
            if n < BLOCK_MIN_ROWS or self.num_trees <= TREE_BLOCK:
                return self._predict_mat(handle, X, 0, -1)
            out = np.zeros(n)
            for start in range(0, self.num_trees, TREE_BLOCK):
                count = min(TREE_BLOCK, self.num_trees - start)
                out += self._predict_mat(handle, X, start, count)
            return out
        finally:
            self._pool.put(handle)
