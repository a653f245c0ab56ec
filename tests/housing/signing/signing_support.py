"""Helpers for the signing tests: a realistic champion directory, key pairs, byte flips."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from housing.signing import PromotionRecord, SigningKey, now_utc, sign_directory

MODEL_NAME = "housing_price_model"
DATA_MD5 = "0123456789abcdef0123456789abcdef"


def write_model_dir(directory: Path, *, seed: int = 0, skops: bool = True) -> Path:
    """A model directory shaped like the register stage's: model.json, serving/, model.skops."""
    serving = directory / "serving"
    serving.mkdir(parents=True, exist_ok=True)
    rng = bytes((seed * 31 + i * 7) % 256 for i in range(4096))
    files = {
        "booster.txt": f"tree\nversion=v4\nseed={seed}\n".encode() * 50,
        "config.json": json.dumps({"format": "housing-serving", "seed": seed}).encode(),
        "coords.npy": rng,
        "targets.npy": rng[::-1],
    }
    for name, data in files.items():
        (serving / name).write_bytes(data)
    manifest = {
        "format": "housing-serving",
        "format_version": 1,
        "files": {n: hashlib.sha256(d).hexdigest() for n, d in sorted(files.items())},
    }
    (serving / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2))
    meta = {"name": MODEL_NAME, "data_md5": DATA_MD5, "metrics": {"rmse": 39_000.0 + seed}}
    (directory / "model.json").write_text(json.dumps(meta, sort_keys=True, indent=2))
    if skops:
        (directory / "model.skops").write_bytes(b"PK\x03\x04" + rng * 3)
    return directory


def record(
    version: str = "1", *, sequence: int = 1, alias: str = "champion", **kw
) -> PromotionRecord:
    fields = {
        "name": MODEL_NAME,
        "version": version,
        "alias": alias,
        "data_md5": DATA_MD5,
        "git_commit": "a" * 40,
        "decision": "promoted: upper 95% bound of paired dRMSE -120 <= 300",
        "sequence": sequence,
        "timestamp": now_utc(),
        "who": "tester",
    }
    fields.update(kw)
    return PromotionRecord(**fields)


def signed_champion(
    directory: Path, key: SigningKey, version: str = "1", *, sequence: int = 1, seed: int = 0, **kw
) -> Path:
    write_model_dir(directory, seed=seed)
    sign_directory(directory, record(version, sequence=sequence, **kw), key)
    return directory


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Flip the lowest bit of one byte (the middle one by default)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))


def copy_dir(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def model_files(directory: Path) -> list[str]:
    """Every file of a signed directory (the record and the signature included), POSIX paths."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
