"""`dvc pull` when the remote is broken: non-zero exit, a message naming what is missing,
and nothing in the workspace changed (only what could be restored is added).
"""

from __future__ import annotations

import pytest
from pipeline_support import dvc, git, lock_outs
from remote_support import (
    DVC_ENV,
    STORE,
    clone,
    create_bucket,
    remote_object,
    running_emulator,
    snapshot,
)

pytestmark = pytest.mark.slow


def _assert_untouched(repo, before: dict[str, str]) -> None:
    assert snapshot(repo) == before
    assert git(repo, "status", "--porcelain") == ""


def test_pull_with_the_emulator_stopped_names_the_endpoint(tmp_path, pushed, mirror_csv):
    with running_emulator(tmp_path / "emulator.log") as emulator:
        create_bucket(emulator, "gone")
    repo = clone(pushed.repo, tmp_path / "clone", emulator.endpoint, "gone")
    before = snapshot(repo)

    # One stage's output: gcsfs retries a refused connection with backoff (about 30 s per
    # request), so pulling everything took 4 minutes here to say the same thing.
    proc = dvc(repo, "pull", "download", mirror=mirror_csv, env=DVC_ENV, check=False)

    assert proc.returncode != 0
    assert "ERROR: failed to connect to gs" in proc.stderr
    assert f"127.0.0.1:{emulator.port}" in proc.stderr
    assert "failed to download" in proc.stderr
    _assert_untouched(repo, before)


def test_pull_from_a_missing_bucket_names_the_bucket(tmp_path, pushed, mirror_csv):
    repo = clone(pushed.repo, tmp_path / "clone", pushed.endpoint, "no-such-bucket")
    before = snapshot(repo)

    proc = dvc(repo, "pull", mirror=mirror_csv, env=DVC_ENV, check=False)

    assert proc.returncode != 0
    assert "ERROR" in proc.stderr and "no-such-bucket" in proc.stderr
    _assert_untouched(repo, before)


def test_pull_with_an_object_deleted_names_the_output(tmp_path, pushed, mirror_csv):
    """The model's object is gone: the other outputs come back, the model is named, not faked."""
    fs = pushed.emulator.filesystem()
    create_bucket(pushed.emulator, "dvc-broken")
    for src in fs.find(f"{pushed.bucket}/{STORE}"):
        fs.pipe_file(src.replace(pushed.bucket, "dvc-broken", 1), fs.cat_file(src))
    model_md5 = lock_outs(pushed.repo)["models/model.skops"]
    fs.rm(remote_object("dvc-broken", model_md5))
    repo = clone(pushed.repo, tmp_path / "clone", pushed.endpoint, "dvc-broken")
    before = snapshot(repo)

    proc = dvc(repo, "pull", mirror=mirror_csv, env=DVC_ENV, check=False)

    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Checkout failed for following targets:\nmodels/model.skops" in output
    assert not (repo / "models" / "model.skops").exists()
    after = snapshot(repo)
    assert {path: after.get(path) for path in before} == before  # nothing existing changed
    outs = [*lock_outs(repo), "champion"]  # the stage outputs and the dvc add-ed champion
    expected = {p for p in outs if p not in before} - {"models/model.skops"}
    # A directory output (models/serving) restores as the files under it.
    restored = {
        next(o for o in outs if f == o or f.startswith(o + "/")) for f in set(after) - set(before)
    }
    assert restored == expected
    status = dvc(repo, "status", mirror=mirror_csv, env=DVC_ENV).stdout
    assert "not in cache:       models/model.skops" in status
