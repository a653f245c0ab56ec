"""The compiled predictor: exact against LightGBM and the skops pipeline, signed, or not used.

A real model (small LightGBM settings, every feature group) is trained on the real
stratified train split, promoted with ``build_champion(..., compiled=True)`` (treelite →
tl2cgen → gcc on this machine) and loaded by the API's loader. Its prices are compared with
LightGBM's and with ``model.predict`` on the whole real test split; each way the library
could be wrong or swapped is refused with a warning and LightGBM's model text scores.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from housing.contract import NUMERIC_FEATURES, TARGET, derive_contract
from housing.intervals import Interval
from housing.model import FeatureConfig, ModelSpec, build_model
from housing.serving import compiled, load_serving
from housing.serving.export import write_serving
from housing.serving.lgbm import Booster
from housing.signing import PromotionRecord, build_champion, verify
from housing.signing.digests import sha256_file

INTERVAL = Interval(level=0.9, log_low=-0.2513, log_high=0.2261, n_calibration=16_512)
FEATURES = FeatureConfig(n_clusters=6, gamma=1.0, rotations=(15.0, 45.0), neighbors=8)


@pytest.fixture(scope="module")
def model(real_split):
    train, _ = real_split
    spec = ModelSpec(
        imputer="iterative",
        features=FEATURES,
        family="lightgbm",
        params={"n_estimators": 60, "num_leaves": 15},
        seed=42,
    )
    return build_model(spec).fit(train.drop(columns=[TARGET]), train[TARGET])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, model, real_split) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    contract = derive_contract(real_split[0], margin=0.25).to_dict()
    sha = write_serving(root / "serving", model, contract=contract, interval=INTERVAL)
    meta = {"name": "housing_price_model", "serving_sha256": sha, "data_md5": "test"}
    (root / "model.json").write_text(json.dumps(meta))
    return root


def _record(version: str = "1") -> PromotionRecord:
    return PromotionRecord(
        name="housing_price_model",
        version=version,
        alias="champion",
        action="promote",
        data_md5="test",
        git_commit="test",
        decision="compiled predictor test",
        sequence=1,
        timestamp="2026-12-07T00:00:00+00:00",
        who="pytest",
    )


@pytest.fixture(scope="module")
def champion(tmp_path_factory, bundle) -> Path:
    """The bundle promoted unsigned, with its booster compiled on this machine."""
    dest = tmp_path_factory.mktemp("champion") / "champion"
    build_champion(bundle, dest, _record(), None, include=("model.json", "serving"), compiled=True)
    return dest


def _copy(champion: Path, tmp_path: Path) -> Path:
    out = tmp_path / "champion"
    shutil.copytree(champion, out)
    return out


def _rewrite_record(directory: Path) -> None:
    """Re-list every file's sha256 in the (unsigned) record, as a forger without a key can."""
    path = directory / "promotion.json"
    record = json.loads(path.read_text())
    record["files"] = {
        name: sha256_file(directory / name) for name in record["files"] if name != "promotion.json"
    }
    path.write_text(json.dumps(record))


def _arrays(serving, frame: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    numeric = frame[list(NUMERIC_FEATURES)].to_numpy(float)
    return numeric, [serving.category_index(c) for c in frame["ocean_proximity"]]


def test_the_compiled_prices_equal_lightgbm_and_the_pipeline_on_the_whole_test_split(
    champion, model, real_split
):
    serving = load_serving(champion, signed=True)
    assert serving.scorer == "compiled"
    _, test = real_split
    X = test.drop(columns=[TARGET])
    numeric, cats = _arrays(serving, X)
    assert np.isnan(numeric[:, 4]).sum() > 30, "rows without bedrooms are part of the check"
    matrix = serving.features(numeric, cats)
    raw = serving.predict_raw(matrix)
    lightgbm = serving.booster.predict_raw(matrix)
    assert len(raw) == len(test) == 4128
    np.testing.assert_allclose(raw, lightgbm, rtol=1e-12, atol=0)
    np.testing.assert_allclose(serving.predict(numeric, cats), model.predict(X), rtol=1e-9, atol=0)
    for i in range(5):  # single rows, the API's inline path
        one = serving.predict(numeric[i : i + 1], cats[i : i + 1])
        np.testing.assert_allclose(one, model.predict(X.iloc[i : i + 1]), rtol=1e-9, atol=0)
    # The promotion-side check accepts the whole test split too, and records it.
    files = compiled.compiled_files((champion / "serving" / "booster.txt").read_text(), rows=matrix)
    checked = json.loads(files[compiled.META])["checked"]
    assert checked["rows"]["rows"] == 4128 and checked["rows"]["max_rel_diff"] <= 1e-12


def test_thresholds_and_leaves_stay_float64_and_the_probe_catches_float32(champion, tmp_path):
    import treelite

    text = (champion / "serving" / "booster.txt").read_text()
    path = tmp_path / "booster.txt"
    path.write_text(text)
    header = json.loads(treelite.frontend.load_lightgbm_model(str(path)).dump_as_json())
    assert (header["threshold_type"], header["leaf_output_type"]) == ("float64", "float64")
    assert load_serving(champion, signed=True)._compiled.types == ("float64", "float64")
    meta = json.loads((champion / "compiled" / "compiled.json").read_text())
    assert (
        meta["checked"]["probe"]["rows"] > 100 and meta["checked"]["probe"]["max_rel_diff"] < 1e-12
    )

    # The same trees with thresholds rounded to float32: the probe rows (each threshold and
    # the next double above it) route some rows to other leaves, and the check says so.
    def to_float32(match: re.Match[str]) -> str:
        values = [repr(float(np.float32(v))) for v in match.group(1).split()]
        return "threshold=" + " ".join(values)

    rounded = re.sub(r"^threshold=(.*)$", to_float32, text, flags=re.MULTILINE)
    booster = Booster(text)
    library = compiled.build_library(rounded, booster.n_features, tmp_path)
    wrong = compiled.CompiledPredictor(library, booster.n_features)
    rows, diff = compiled.check_library(
        wrong, booster, compiled.probe_rows(text, booster.n_features)
    )
    assert diff > compiled.RTOL, f"float32 thresholds went unnoticed on {rows} probe rows"


def test_missing_zero_and_tiny_values_follow_lightgbms_rule(champion):
    serving = load_serving(champion, signed=True)
    probe = compiled.probe_rows(
        (champion / "serving" / "booster.txt").read_text(), serving.booster.n_features
    )
    special = np.array([np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, 2e-35])
    rows = np.repeat(probe[:8], len(special), axis=0)
    rows[:, ::3] = np.tile(special, 8)[:, None]
    np.testing.assert_array_equal(serving.predict_raw(rows), serving.booster.predict_raw(rows))


def test_the_signature_covers_the_library(tmp_path, bundle, signing_key, verify_pem):
    from housing.signing import KeyRing, SigningError

    dest = tmp_path / "signed"
    record = build_champion(
        bundle, dest, _record(), signing_key, include=("model.json", "serving"), compiled=True
    )
    assert {"compiled/predictor.so", "compiled/compiled.json"} <= set(record.files)
    keys = KeyRing.from_settings(verify_pem, "")
    assert verify(dest, keys).signed
    with pytest.MonkeyPatch.context() as mp:  # verified here with the environment's keys
        mp.setenv("HOUSING_VERIFY_KEYS", verify_pem)
        assert load_serving(dest).scorer == "compiled"
    lib = dest / "compiled" / "predictor.so"
    data = bytearray(lib.read_bytes())
    data[len(data) // 2] ^= 1
    lib.write_bytes(bytes(data))
    with pytest.raises(SigningError, match=r"predictor\.so"):
        verify(dest, keys)


def _refused(directory: Path, caplog, reason: str) -> None:
    with caplog.at_level(logging.WARNING, logger="housing.serving.compiled"):
        serving = load_serving(directory, signed=True)
    assert serving.scorer == "lightgbm"
    assert reason in caplog.text and "scoring with LightGBM's model text" in caplog.text


def test_a_library_is_loaded_only_from_a_champion_whose_signature_was_verified(
    champion, caplog, monkeypatch
):
    """A shared library is code: an unsigned record (anyone can write one) is not enough."""
    monkeypatch.delenv("HOUSING_VERIFY_KEYS", raising=False)
    monkeypatch.delenv("HOUSING_VERIFY_KEY_FILES", raising=False)
    with caplog.at_level(logging.WARNING, logger="housing.serving.compiled"):
        assert load_serving(champion).scorer == "lightgbm"
    assert "no verification key in HOUSING_VERIFY_KEYS" in caplog.text
    caplog.clear()
    assert load_serving(champion, signed=False).scorer == "lightgbm"
    assert "compiled" not in caplog.text  # the caller said no: nothing to warn about


def test_a_library_that_is_not_the_recorded_one_is_not_used(champion, tmp_path, caplog):
    directory = _copy(champion, tmp_path)
    lib = directory / "compiled" / "predictor.so"
    lib.write_bytes(lib.read_bytes() + b"\0")
    _refused(directory, caplog, "compiled/predictor.so is not the file the record lists")


def test_a_library_without_a_promotion_record_is_not_used(champion, tmp_path, caplog):
    directory = _copy(champion, tmp_path)
    (directory / "promotion.json").unlink()
    _refused(directory, caplog, "no promotion record lists it")


def test_a_library_for_another_platform_is_not_used(champion, tmp_path, caplog):
    directory = _copy(champion, tmp_path)
    path = directory / "compiled" / "compiled.json"
    meta = json.loads(path.read_text())
    meta["platform"] = "linux-aarch64-glibc"
    path.write_text(json.dumps(meta))
    _rewrite_record(directory)
    _refused(directory, caplog, "built for linux-aarch64-glibc")


def test_a_library_of_another_booster_is_not_used(champion, tmp_path, caplog):
    directory = _copy(champion, tmp_path)
    path = directory / "compiled" / "compiled.json"
    meta = json.loads(path.read_text())
    meta["booster_sha256"] = "0" * 64
    path.write_text(json.dumps(meta))
    _rewrite_record(directory)
    _refused(directory, caplog, "compiled from another booster.txt")


def test_a_library_that_is_not_exact_here_is_not_used(champion, tmp_path, caplog):
    """A library whose scores differ (here: every leaf value scaled) is refused at load."""
    directory = _copy(champion, tmp_path)
    text = (directory / "serving" / "booster.txt").read_text()

    def scaled(match: re.Match[str]) -> str:
        return "leaf_value=" + " ".join(repr(float(v) * 1.001) for v in match.group(1).split())

    other = re.sub(r"^leaf_value=(.*)$", scaled, text, flags=re.MULTILINE)
    n_features = Booster(text).n_features
    library = compiled.build_library(other, n_features, tmp_path)
    (directory / "compiled" / "predictor.so").write_bytes(library)
    path = directory / "compiled" / "compiled.json"
    meta = json.loads(path.read_text())
    meta["library_sha256"] = compiled.sha256_hex(library)
    path.write_text(json.dumps(meta))
    _rewrite_record(directory)
    _refused(directory, caplog, "differs from LightGBM by")


def test_promotion_refuses_a_library_that_differs_from_lightgbm(champion, monkeypatch):
    """The promotion-side check: a library off by more than RTOL is never written."""
    text = (champion / "serving" / "booster.txt").read_text()
    real = compiled.build_library

    def off_by_one_leaf(booster_text, n_features, workdir):
        changed = re.sub(
            r"^leaf_value=(\S+)",
            lambda m: f"leaf_value={float(m.group(1)) + 1e-3!r}",
            booster_text,
            count=1,
            flags=re.MULTILINE,
        )
        return real(changed, n_features, workdir)

    monkeypatch.setattr(compiled, "build_library", off_by_one_leaf)
    monkeypatch.setenv(compiled.CACHE_ENV, "off")  # the real library may be cached already
    with pytest.raises(compiled.CompileError, match="differs from LightGBM"):
        compiled.compiled_files(text)


def test_threads_score_side_by_side_with_the_same_prices(champion, real_split):
    serving = load_serving(champion, signed=True)
    _, test = real_split
    numeric, cats = _arrays(serving, test.drop(columns=[TARGET]))
    batches = [(numeric[i : i + 100], cats[i : i + 100]) for i in range(0, 1600, 100)]
    expected = [serving.predict(n, c) for n, c in batches]
    results: dict[tuple[int, int], np.ndarray] = {}
    start = threading.Barrier(4)

    def work(t: int) -> None:
        start.wait()
        for r in range(5):
            for b, (n, c) in enumerate(batches):
                if (b + t) % 4 == 0:
                    results[(b, r)] = serving.predict(n, c)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 5 * len(batches)
    for (b, _), got in results.items():
        np.testing.assert_array_equal(got, expected[b])


def test_loading_a_compiled_champion_imports_no_compiler_side_package(champion):
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from housing.serving import load_serving\n"
        f"model = load_serving(Path({str(champion)!r}), signed=True)\n"
        "assert model.scorer == 'compiled', model.scorer\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('treelite', 'tl2cgen', 'lightgbm', 'sklearn', 'pandas')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_benchmark_times_both_scorers_on_the_same_rows(champion, real_split):
    from bench.model_time import compare_scorers

    _, test = real_split
    rows = test.drop(columns=[TARGET]).head(100).to_dict("records")
    rows = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]
    result = compare_scorers(load_serving(champion, signed=True), rows, repeats=20)
    for label, n in (("1_row", 1), ("100_rows", 100)):
        part = result[label]
        assert part["rows"] == n
        assert part["booster_ms"]["compiled"] > 0 and part["booster_ms"]["lightgbm"] > 0
        assert (
            part["booster_ratio"] == part["booster_ms"]["lightgbm"] / part["booster_ms"]["compiled"]
        )
    assert set(result["two_threads_speedup"]) == {"lightgbm", "compiled"}
