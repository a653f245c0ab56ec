"""The booster compiled to machine code: treelite reads LightGBM's model text, tl2cgen writes
it as C, gcc builds a shared library. Loaded with ctypes; exact, or not used at all.

Two halves, one file so that the format has one owner:

- **Compiling** (promotion side, :func:`compile_champion`): needs the ``treelite`` and
  ``tl2cgen`` packages and a C compiler, imported only inside these functions. Writes
  ``compiled/predictor.so`` and ``compiled/compiled.json`` into a champion directory, after
  checking the library's raw scores against LightGBM's on probe rows (every split threshold
  of every feature, at and just above it, plus zeros, tiny values and NaN) and any real rows
  given; a difference above ``RTOL`` means no library, with a warning.
- **Loading** (API side, :func:`load_compiled`): numpy and ctypes only. The library is used
  only from a champion whose signature a trusted key verified (a library is code), when the
  promotion record lists its sha256, its ``compiled.json`` names this platform and the very
  ``booster.txt`` the serving bundle verified, and it agrees with LightGBM on the probe rows
  on this machine; otherwise a warning and LightGBM's model text, the source of truth.

Exactness by construction, not only by test: thresholds and leaf values stay float64
(treelite keeps LightGBM's types; tl2cgen prints 19 significant digits and casts to
``double``), the trees are summed in LightGBM's order from 0.0, no fast-math, and inputs go
through LightGBM's own rule for missing values of a ``missing_type=None`` split (NaN and
``|x| <= 1e-35f`` read as 0.0). Models with other split kinds are not compiled.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from _ctypes import dlclose as _dlclose  # bound at import: __del__ may run at shutdown
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FORMAT = "housing-compiled"
FORMAT_VERSION = 1
COMPILED_DIR = "compiled"  # in a champion directory, beside serving/
LIBRARY = "predictor.so"
META = "compiled.json"
ENTRY = "housing_predict_raw"
RTOL = 1e-9
# No -ffast-math (it would reorder the sum and drop the NaN rule); -O1 builds the 340 trees
# in a fraction of -O2's time and predicts as fast (bench/model_time.py, docs/serving-bundle.md).
CFLAGS = ("-O1", "-std=c99", "-fPIC", "-shared", "-fno-fast-math", "-ffp-contract=off")
COMPILE_TIMEOUT_S = 900
CACHE_ENV = "HOUSING_COMPILE_CACHE"  # a directory, or "off"; see cache_dir
LOAD_PROBE_ROWS = 1024  # rows checked against LightGBM each time the API loads the library

# tl2cgen's missing-value test before a comparison: "go left if missing" or "go right if
# missing" (the default direction of a split).
_MISSING_TEST = re.compile(
    r"!\(data\[\d+\]\.missing != -1\) \|\| |\(data\[\d+\]\.missing != -1\) && "
)

# The batch entry point. Rows are converted once by LightGBM's input rule, then scored tree
# by tree (tl2cgen writes one predict_unit<k> per tree when each tree is its own unit): one
# tree's code stays in the instruction cache while every row walks it. Each row's sum still
# runs from 0.0 over trees 0, 1, ... in LightGBM's order. The caller's output buffer and a
# buffer of its own per call: reentrant, so threads call it side by side without a lock.
_BATCH_C = """\
#include "header.h"

typedef void (*unit_fn)(union Entry*, double*);
static const unit_fn units[] = {%(units)s};
static const int64_t n_units = %(n_units)d;

/* LightGBM's input rule for missing_type=None splits: a value that is NaN or whose magnitude
   is at most kZeroThreshold (1e-35f) is read as 0.0 (the dense-row reader drops it, the
   split's NaN test maps NaN to 0). */
static double lightgbm_value(double v) {
  return (fabs(v) > (double)1e-35f) ? v : 0.0;
}

int64_t housing_predict_raw(const double* X, int64_t n_rows, int64_t n_cols, double* out) {
  if (n_cols != %(n_features)d || n_rows < 0) {
    return -1;
  }
  union Entry* rows = malloc(sizeof(union Entry) * (size_t)(n_rows > 0 ? n_rows * n_cols : 1));
  if (rows == NULL) {
    return -2;
  }
  for (int64_t i = 0; i < n_rows * n_cols; ++i) {
    rows[i].fvalue = lightgbm_value(X[i]);
  }
  for (int64_t i = 0; i < n_rows; ++i) {
    out[i] = 0.0;
  }
  for (int64_t k = 0; k < n_units; ++k) {
    const unit_fn unit = units[k];
    for (int64_t i = 0; i < n_rows; ++i) {
      unit(rows + i * n_cols, out + i);
    }
  }
  free(rows);
  return n_rows;
}
"""


class CompileError(RuntimeError):
    """The booster cannot be compiled here, or the library does not match LightGBM."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def platform_tag() -> str:
    """What a compiled library depends on: OS, CPU, C library (``linux-x86_64-glibc``)."""
    libc, _ = platform.libc_ver()
    return f"{sys.platform}-{platform.machine()}-{libc or 'unknown'}"


# --- the probe rows ---------------------------------------------------------------------


def split_thresholds(booster_text: str, n_features: int) -> list[np.ndarray]:
    """Every feature's split thresholds (sorted, unique), read from LightGBM's model text."""
    features = re.findall(r"^split_feature=(.*)$", booster_text, flags=re.MULTILINE)
    thresholds = re.findall(r"^threshold=(.*)$", booster_text, flags=re.MULTILINE)
    f = np.array(" ".join(features).split(), dtype=np.intp)
    t = np.array(" ".join(thresholds).split(), dtype=np.float64)
    if f.shape != t.shape:
        raise CompileError("the booster text lists as many thresholds as split features")
    return [np.unique(t[f == j]) for j in range(n_features)]


def _trees(booster_text: str, every: int = 1) -> list[dict[str, list[str]]]:
    """Every ``every``-th tree's split features, thresholds and children (LightGBM's text)."""
    trees = []
    blocks = re.split(r"^Tree=\d+\n", booster_text.split("\nend of trees")[0], flags=re.M)
    for block in blocks[1::every]:
        fields = dict(line.split("=", 1) for line in block.split("\n") if "=" in line)
        trees.append({k: fields.get(k, "").split() for k in _TREE_KEYS})
    return trees


_TREE_KEYS = ("split_feature", "threshold", "left_child", "right_child")


def leaf_rows(booster_text: str, n_features: int, every: int = 1) -> np.ndarray:
    """One row per leaf of every tree, reaching it on the boundary of its path.

    Along a leaf's path, a left turn bounds a feature above (x <= t) and a right turn below
    (x > t); the row takes the tightest upper bound itself (the ``<=`` case), else the
    double just above the lower bound, else 0. Every leaf value and every path of the model
    is then checked, each on a threshold's edge. ``every``: only every n-th tree's leaves.
    """
    rows = []
    for tree in _trees(booster_text, every):
        if not tree["split_feature"]:  # a single-leaf tree
            continue
        feats = [int(f) for f in tree["split_feature"]]
        thresholds = [float(t) for t in tree["threshold"]]
        children = (
            [int(c) for c in tree["left_child"]],
            [int(c) for c in tree["right_child"]],
        )
        pending = [(0, np.full(n_features, -np.inf), np.full(n_features, np.inf))]
        while pending:
            node, low, high = pending.pop()
            for side, child in enumerate((children[0][node], children[1][node])):
                lo, hi = low.copy(), high.copy()
                f, t = feats[node], thresholds[node]
                if side == 0:
                    hi[f] = min(hi[f], t)
                else:
                    lo[f] = max(lo[f], t)
                if child >= 0:
                    pending.append((child, lo, hi))
                    continue
                row = np.where(np.isfinite(hi), hi, np.nextafter(lo, np.inf))
                rows.append(np.where(np.isfinite(row), row, 0.0))
    return np.array(rows, dtype=np.float64).reshape(-1, n_features)


def probe_rows(booster_text: str, n_features: int, max_rows: int | None = None) -> np.ndarray:
    """The rows a compiled library is checked on against LightGBM.

    :func:`leaf_rows` (every leaf, on its path's boundary), then rows that put every feature
    at each of its split thresholds and just above it (column j cycles through its
    thresholds t and nextafter(t, +inf) with its own stride, so rows mix), then 0.0, -0.0,
    ±1e-36, ±1e-35 and NaN: where a float32 threshold, a ``<`` for ``<=`` or another
    missing-value rule would route a row to another leaf. ``max_rows`` keeps an evenly
    spaced subset (the API's check at load).
    """
    thresholds = split_thresholds(booster_text, n_features)
    edge = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, np.nan])
    columns = [
        np.concatenate([t, np.nextafter(t, np.inf), edge]) if len(t) else edge for t in thresholds
    ]
    n = max(len(c) for c in columns)
    X = np.empty((n, n_features))
    for j, values in enumerate(columns):
        stride = 2 * j + 1
        X[:, j] = values[(np.arange(n) * stride + j) % len(values)]
    every = 1
    if max_rows is not None:  # about half the rows from leaves, half on thresholds
        n_leaves = booster_text.count("\nleaf_value=") and sum(
            len(v.split()) for v in re.findall(r"^leaf_value=(.*)$", booster_text, re.MULTILINE)
        )
        every = max(1, -(-2 * n_leaves // max_rows))
        X = X[np.linspace(0, len(X) - 1, min(len(X), max_rows // 2)).astype(np.intp)]
    X = np.vstack([leaf_rows(booster_text, n_features, every), X])
    return np.ascontiguousarray(X)


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest relative difference of two score vectors (relative to 1 near zero)."""
    if a.shape != b.shape:
        return float("inf")
    if not len(a):
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))


# --- the loaded library -----------------------------------------------------------------


class CompiledPredictor:
    """A compiled booster loaded from verified bytes; ``predict_raw`` is reentrant (no lock)."""

    def __init__(self, library: bytes, n_features: int) -> None:
        # dlopen the verified bytes themselves, from an anonymous in-memory file: a path on
        # disk could be swapped between hashing and loading. The descriptor stays open while
        # the library is loaded: the dynamic loader knows a library by its path, and a reused
        # /proc/self/fd/<n> would hand back the earlier library instead of loading this one.
        self._fd = os.memfd_create("housing-predictor", os.MFD_CLOEXEC)
        self._lib: ctypes.CDLL | None = None
        view = memoryview(library)
        while view:
            view = view[os.write(self._fd, view) :]
        self._lib = ctypes.CDLL(f"/proc/self/fd/{self._fd}")
        self._fn = self._lib[ENTRY]
        self._fn.restype = ctypes.c_int64
        self._fn.argtypes = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
        self.n_features = int(n_features)
        got = ctypes.CFUNCTYPE(ctypes.c_int32)(("get_num_feature", self._lib))()
        if got != self.n_features:
            raise CompileError(f"library expects {got} features, not {self.n_features}")
        #: the C types of the thresholds and leaf values tl2cgen wrote (LightGBM's: float64)
        self.types = tuple(
            ctypes.CFUNCTYPE(ctypes.c_char_p)((name, self._lib))().decode()
            for name in ("get_threshold_type", "get_leaf_output_type")
        )
        if self.types != ("float64", "float64"):
            raise CompileError(f"library computes with {self.types}, not float64")

    def __del__(self) -> None:
        # Unloaded only once nothing can call it (a thread inside predict_raw holds self).
        lib = getattr(self, "_lib", None)
        if lib is not None:
            _dlclose(lib._handle)
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        """Raw scores of the rows of ``X`` (n, n_features), float64."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a (n, {self.n_features}) matrix, got {X.shape}")
        out = np.empty(X.shape[0], dtype=np.float64)
        done = self._fn(X.ctypes.data, X.shape[0], X.shape[1], out.ctypes.data)
        if done != X.shape[0]:
            raise CompileError(f"compiled predictor scored {done} of {X.shape[0]} rows")
        return out


# --- compiling (promotion side) ----------------------------------------------------------


def _check_supported(booster_text: str) -> None:
    kinds = set()
    for line in re.findall(r"^decision_type=(.*)$", booster_text, flags=re.MULTILINE):
        kinds.update(int(v) for v in line.split())
    # 0/2: numerical split, missing_type None (2: default left). Categorical (bit 0) and
    # Zero/NaN missing types (bits 2-3) follow other rules the C wrapper does not copy.
    if kinds - {0, 2}:
        raise CompileError(
            f"the booster has split kinds {sorted(kinds - {0, 2})} (categorical or missing "
            "Zero/NaN); only numerical splits without missing values are compiled"
        )
    if not re.search(r"^objective=regression\b", booster_text, flags=re.MULTILINE):
        raise CompileError("only regression boosters (identity output) are compiled")


def compiler() -> str:
    """The C compiler's path (``CC``, else gcc); CompileError if there is none."""
    name = os.environ.get("CC", "gcc")
    found = shutil.which(name)
    if found is None:
        raise CompileError(f"no C compiler ({name}) on PATH")
    return found


def can_compile() -> bool:
    """Whether this machine has what a promotion needs to compile a booster: treelite,
    tl2cgen and a C compiler (``CC``, else gcc)."""
    import importlib.util

    modules = ("treelite", "tl2cgen")
    found = all(importlib.util.find_spec(m) is not None for m in modules)
    return found and shutil.which(os.environ.get("CC", "gcc")) is not None


def build_library(booster_text: str, n_features: int, workdir: Path) -> bytes:
    """Generate C for the booster (treelite → tl2cgen) and compile it; the library's bytes."""
    try:
        import tl2cgen
        import treelite
    except ImportError as exc:
        raise CompileError(f"treelite/tl2cgen not installed ({exc.name})") from None
    _check_supported(booster_text)
    model_file = workdir / "booster.txt"
    model_file.write_text(booster_text, encoding="utf-8")
    model = treelite.frontend.load_lightgbm_model(str(model_file))
    src = workdir / "src"
    # One translation unit per tree: gcc's time grows faster than linearly with a function's
    # size (one 340-tree function: minutes at -O2; one per tree: seconds).
    tl2cgen.generate_c_code(model, str(src), params={"parallel_comp": max(1, model.num_tree)})
    sources = sorted(src.glob("*.c"))
    splits = 0
    for path in sources:
        code = path.read_text()
        # Inputs are never "missing" here (the wrapper applies LightGBM's rule itself), and
        # tl2cgen's missing test reads the low 32 bits of a double as an int (-1 = missing),
        # which would misroute a value whose low word is all ones.
        code, n = _MISSING_TEST.subn("", code)
        splits += n
        path.write_text(code)
    if "missing" in "".join(p.read_text() for p in sources if p.name != "header.h"):
        raise CompileError("tl2cgen wrote a missing-value test this code does not remove")
    wrapper = src / "housing_batch.c"
    units = [f"predict_unit{k}" for k in range(model.num_tree)]
    header = (src / "header.h").read_text()
    if any(f"void {u}(union Entry* data, double* result);" not in header for u in units):
        raise CompileError("tl2cgen did not write one predict_unit per tree")
    wrapper.write_text(
        _BATCH_C % {"n_features": n_features, "units": ", ".join(units), "n_units": len(units)}
    )
    out = workdir / LIBRARY
    _gcc([*_bundles(src, sources), wrapper], out, cwd=src)
    logger.debug("compiled %d trees, %d splits", model.num_tree, splits)
    return out.read_bytes()


def _bundles(src: Path, sources: list[Path]) -> list[Path]:
    """tl2cgen's one-tree files joined into one file per core, each including the header
    once: gcc's start-up and header parsing per file were half its time (350 files in two
    processes 12.0 s, two bundles 6.1 s). The functions and flags are the same."""
    trees = [p for p in sources if p.name.startswith("tu")]
    jobs = max(1, min(len(trees), os.cpu_count() or 1))
    bundles = []
    for j in range(jobs):
        bundle = src / f"bundle{j}.c"
        parts = ['#include "header.h"\n']
        parts += [p.read_text().replace('#include "header.h"', "", 1) for p in trees[j::jobs]]
        bundle.write_text("".join(parts))
        bundles.append(bundle)
    return [*bundles, *(p for p in sources if not p.name.startswith("tu"))]


def _gcc(sources: list[Path], out: Path, *, cwd: Path) -> None:
    """Compile ``sources`` into the shared library ``out``: one gcc per core, then a link.

    gcc compiles one file after another, so the 350 one-tree units take ~20 s in one
    process and about half that in two (docs/serving-bundle.md).
    """
    jobs = max(1, min(len(sources), os.cpu_count() or 1))
    flags = [f for f in CFLAGS if f != "-shared"]
    procs = [
        subprocess.Popen(
            [compiler(), *flags, "-c", *map(str, sources[j::jobs])],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for j in range(jobs)
    ]
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            err = f"timed out after {COMPILE_TIMEOUT_S} s"
        if proc.returncode != 0:
            errors.append(err.strip()[-500:])
    if errors:
        raise CompileError(f"gcc failed: {errors[0]}")
    objects = [str(cwd / f"{path.stem}.o") for path in sources]
    cmd = [compiler(), "-shared", "-o", str(out), *objects, "-lm"]
    result = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=COMPILE_TIMEOUT_S
    )
    if result.returncode != 0:
        raise CompileError(f"linking failed: {result.stderr.strip()[-500:]}")


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where compiled libraries are kept by content (None: ``HOUSING_COMPILE_CACHE=off``).

    ``HOUSING_COMPILE_CACHE``, else ``$XDG_CACHE_HOME/housing/compiled``, else
    ``~/.cache/housing/compiled``. A cached library is checked against LightGBM like a new
    one before it is used.
    """
    env = os.environ if environ is None else environ
    value = env.get(CACHE_ENV, "").strip()
    if value.lower() in ("off", "0", "none"):
        return None
    if value:
        return Path(value)
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "housing" / "compiled"


def _cache_key(booster_text: str, n_features: int) -> str:
    """Everything a library's bytes depend on: the booster, the toolchain, this platform."""
    try:
        import tl2cgen
        import treelite
    except ImportError as exc:
        raise CompileError(f"treelite/tl2cgen not installed ({exc.name})") from None

    parts = {
        "format_version": FORMAT_VERSION,
        "booster_sha256": sha256_hex(booster_text.encode("utf-8")),
        "n_features": n_features,
        "platform": platform_tag(),
        "compiler": _compiler_version(),
        "cflags": list(CFLAGS),
        "treelite": treelite.__version__,
        "tl2cgen": tl2cgen.__version__,
        "batch_c": sha256_hex(_BATCH_C.encode("utf-8")),
    }
    return sha256_hex(json.dumps(parts, sort_keys=True).encode("utf-8"))


def _cached(booster_text: str, n_features: int) -> Path | None:
    """The cache file a booster's library is kept in here (None: no cache)."""
    folder = cache_dir()
    return None if folder is None else folder / f"{_cache_key(booster_text, n_features)}.so"


def _keep(path: Path, library: bytes) -> None:
    """Store a checked library in the cache (atomically; a failure is only a warning)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(library)
        partial.replace(path)  # a concurrent reader sees all of it or nothing
    except OSError as exc:
        logger.warning("compiled predictor not cached in %s: %s", path.parent, exc)


def check_library(
    predictor: CompiledPredictor, booster: Any, rows: np.ndarray
) -> tuple[int, float]:
    """(rows, max relative difference) of the library's raw scores against LightGBM's."""
    expected = booster.predict_raw(rows)
    got = predictor.predict_raw(rows)
    return len(rows), max_rel_diff(got, expected)


def _checks(
    library: bytes, booster: Any, probe: np.ndarray, rows: np.ndarray | None
) -> dict[str, tuple[int, float]]:
    """The library's agreement with LightGBM on the probe (and ``rows``); CompileError if off."""
    try:
        predictor = CompiledPredictor(library, booster.n_features)
    except (OSError, AttributeError) as exc:
        raise CompileError(f"the library does not load ({exc})") from None
    checks = {"probe": check_library(predictor, booster, probe)}
    if rows is not None:
        checks["rows"] = check_library(predictor, booster, rows)
    worst = max(diff for _, diff in checks.values())
    if not worst <= RTOL:
        raise CompileError(
            f"compiled predictor differs from LightGBM by {worst:.3g} (relative; limit {RTOL})"
        )
    return checks


def compiled_files(booster_text: str, rows: np.ndarray | None = None) -> dict[str, bytes]:
    """``{predictor.so, compiled.json}`` for a booster, checked exact against LightGBM.

    ``rows`` are real model-matrix rows to check besides the probe (the test split's, in the
    test that proves it). Raises :class:`CompileError` when it cannot compile here or the
    library differs from LightGBM by more than ``RTOL`` on any row.
    """
    from housing.serving.lgbm import Booster

    booster = Booster(booster_text)
    n_features = booster.n_features
    probe = probe_rows(booster_text, n_features)
    # A library is a function of the booster text, the toolchain and the platform, so a
    # version moved twice (held as challenger, then promoted; rolled back to) compiles once
    # per machine. A cached library passes the same checks as a new one, or is rebuilt.
    cached = _cached(booster_text, n_features)
    library = checks = None
    if cached is not None and cached.is_file():
        try:
            library = cached.read_bytes()
            checks = _checks(library, booster, probe, rows)
            logger.debug("compiled predictor from the cache %s", cached)
        except (CompileError, OSError) as exc:
            logger.warning("cached compiled predictor %s refused (%s): compiling", cached, exc)
            library = None
    if library is None:
        with tempfile.TemporaryDirectory(prefix="housing-compile-") as tmp:
            library = build_library(booster_text, n_features, Path(tmp))
        checks = _checks(library, booster, probe, rows)
        if cached is not None:
            _keep(cached, library)
    import tl2cgen
    import treelite

    booster_bytes = booster_text.encode("utf-8")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "platform": platform_tag(),
        "library": LIBRARY,
        "library_sha256": sha256_hex(library),
        "booster_sha256": sha256_hex(booster_bytes),
        "n_features": booster.n_features,
        "num_trees": booster.num_trees,
        "entry": ENTRY,
        "compiler": _compiler_version(),
        "cflags": list(CFLAGS),
        "treelite": treelite.__version__,
        "tl2cgen": tl2cgen.__version__,
        "checked": {name: {"rows": n, "max_rel_diff": d} for name, (n, d) in checks.items()},
        "rtol": RTOL,
    }
    return {LIBRARY: library, META: (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()}


def _compiler_version() -> str:
    result = subprocess.run([compiler(), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


def compile_champion(directory: Path, rows: np.ndarray | None = None) -> bool:
    """Write ``compiled/`` into a champion directory from its ``serving/booster.txt``.

    Returns whether it did; a machine without treelite, tl2cgen or gcc, an unsupported
    booster or a library that is not exact is a warning, and the champion is served by
    LightGBM's model text alone.
    """
    from housing.serving import BOOSTER, SERVING_DIR

    directory = Path(directory)
    try:
        text = (directory / SERVING_DIR / BOOSTER).read_text(encoding="utf-8")
        files = compiled_files(text, rows)
    except Exception as exc:  # an optional accelerator never stops a promotion
        logger.warning("no compiled predictor for %s: %s", directory, exc)
        return False
    out = directory / COMPILED_DIR
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
        (out / name).chmod(0o644)
    out.chmod(0o755)
    meta = json.loads(files[META])
    logger.info(
        "compiled predictor for %s: %d trees, %s, exact on %s",
        meta["platform"],
        meta["num_trees"],
        meta["compiler"],
        ", ".join(f"{c['rows']} {name} rows" for name, c in meta["checked"].items()),
    )
    return True


# --- loading (API side) -------------------------------------------------------------------


def _record_digests(directory: Path) -> Mapping[str, str] | None:
    try:
        record = json.loads((directory / "promotion.json").read_bytes())
    except (OSError, ValueError):
        return None
    files = record.get("files") if isinstance(record, dict) else None
    return files if isinstance(files, dict) else None


def _signature_verified_here(directory: Path) -> None:
    """CompileError unless a key of ``HOUSING_VERIFY_KEYS``/``_FILES`` signed ``directory``."""
    from housing.signing import KeyRing, verify

    keys = KeyRing.from_env()
    if not len(keys):
        raise CompileError(
            "no verification key in HOUSING_VERIFY_KEYS/_FILES: a library is code, loaded "
            "only from a champion whose signature is verified"
        )
    if not verify(directory, keys).signed:
        raise CompileError("the champion's signature was not verified")


def load_compiled(
    directory: Path, booster_text: bytes, booster: Any, *, signed: bool | None = None
) -> CompiledPredictor | None:
    """The champion's compiled predictor if it is there, verified and exact here; else None.

    ``booster_text`` is the serving bundle's verified ``booster.txt``; ``booster`` the
    LightGBM model built from it, against which the library is checked on probe rows.
    A shared library is code, so it is loaded only from a champion whose signature a trusted
    key verified: ``signed=True`` when the caller did (the API's ``verify()`` result),
    ``None`` to verify here with the environment's keys, ``False`` never to load one.
    """
    directory = Path(directory)
    folder = directory / COMPILED_DIR
    if not folder.is_dir() or signed is False:
        return None
    try:
        if signed is None:
            _signature_verified_here(directory)
        digests = _record_digests(directory)
        if digests is None:
            raise CompileError("no promotion record lists it (only a promoted champion's is used)")
        blobs = {}
        for name in (META, LIBRARY):
            data = (folder / name).read_bytes()
            if digests.get(f"{COMPILED_DIR}/{name}") != sha256_hex(data):
                raise CompileError(f"{COMPILED_DIR}/{name} is not the file the record lists")
            blobs[name] = data
        meta = json.loads(blobs[META])
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise CompileError(f"{META} is not a {FORMAT} v{FORMAT_VERSION} description")
        if meta.get("platform") != platform_tag():
            raise CompileError(f"built for {meta.get('platform')}, this is {platform_tag()}")
        if meta.get("booster_sha256") != sha256_hex(booster_text):
            raise CompileError("compiled from another booster.txt than the serving bundle's")
        if meta.get("library_sha256") != sha256_hex(blobs[LIBRARY]):
            raise CompileError(f"{LIBRARY} is not the library {META} describes")
        predictor = CompiledPredictor(blobs[LIBRARY], booster.n_features)
        probe = probe_rows(booster_text.decode("utf-8"), booster.n_features, LOAD_PROBE_ROWS)
        rows, diff = check_library(predictor, booster, probe)
        if not diff <= RTOL:
            raise CompileError(f"differs from LightGBM by {diff:.3g} on {rows} probe rows here")
    except Exception as exc:  # an optional accelerator never stops a load
        logger.warning(
            "compiled predictor in %s not used (%s); scoring with LightGBM's model text",
            folder,
            exc,
        )
        return None
    logger.info("compiled predictor loaded from %s (%s)", folder, meta["platform"])
    return predictor
