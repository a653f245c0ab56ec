"""The committed DVC config: a default gs:// remote, and nothing local or secret in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import configobj

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_ONLY = {"endpointurl", "allow_anonymous_login", "credentialpath", "credentials"}


def test_default_remote_is_gcs_with_a_bucket_url():
    config = configobj.ConfigObj(str(REPO_ROOT / ".dvc" / "config"))
    name = config["core"]["remote"]
    remote = config[f'remote "{name}"']
    assert remote["url"].startswith("gs://")
    bucket, _, path = remote["url"].removeprefix("gs://").partition("/")
    assert bucket and path  # a prefix inside the bucket, beside the API's models/ prefix


def test_no_endpoint_or_credentials_are_committed():
    config = configobj.ConfigObj(str(REPO_ROOT / ".dvc" / "config"))
    for section, values in config.items():
        if section.startswith("remote "):
            assert not LOCAL_ONLY & set(values), f"{section} holds {LOCAL_ONLY & set(values)}"


def test_config_local_is_git_ignored():
    proc = subprocess.run(
        ["git", "check-ignore", "-q", ".dvc/config.local"], cwd=REPO_ROOT, check=False
    )
    assert proc.returncode == 0
