"""housing.redact: passwords out of URIs and out of any text that quotes them."""

from __future__ import annotations

import pytest

from housing.redact import MASK, redact, redact_uri, secrets_in


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://admin:S3cretPw@127.0.0.1:5000", "http://admin:***@127.0.0.1:5000"),
        ("https://u:p%40ss@host/path?x=1", "https://u:***@host/path?x=1"),
        ("https://ghp_token123@github.com/x", "https://***@github.com/x"),
        ("http://host/api?token=abc123&path=a", "http://host/api?token=***&path=a"),
        ("http://host/x?X-Goog-Signature=deadbeef", "http://host/x?X-Goog-Signature=***"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("sqlite:////abs/path/mlflow.db", "sqlite:////abs/path/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://u:p@ss@h", "http://u:***@h"),
        ("http://u:p@ss@h:5000/x?a=b@c", "http://u:***@h:5000/x?a=b@c"),
        ("see http://u:pw@h and http://v:qw@k", "see http://u:***@h and http://v:***@k"),
        ("", ""),
    ],
)
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected


def test_secrets_quoted_alone_are_masked_in_every_coding(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    uri = "http://admin:p%2Fw0rd!@10.0.0.1"
    secrets = secrets_in(uri)
    text = f"login p/w0rd! refused; retried p%2Fw0rd! at {uri} (p%2Fw0rd%21)"
    out = redact(text, secrets)
    assert "w0rd" not in out and out.count(MASK) == 4


def test_environment_passwords_are_secrets(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "envSecret9")
    assert "envSecret9" in secrets_in("http://host")
    assert redact("server said envSecret9 is wrong", secrets_in(None)) == (
        f"server said {MASK} is wrong"
    )
    assert "envSecret9" not in secrets_in("http://host", env=False)


def test_short_secrets_do_not_mask_ordinary_text():
    assert redact("a:b connection refused", ["a", "b"]) == "a:b connection refused"


def test_a_password_with_an_unencoded_at_is_collected_whole(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    secrets = secrets_in("http://u:p@ss@h", env=False)
    assert secrets == ("p@ss",)
    assert redact("server rejected 'p@ss'", secrets) == f"server rejected '{MASK}'"


def test_the_signing_key_is_a_secret_but_its_file_path_is_not(monkeypatch):
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAbCdEf\n-----END PRIVATE KEY-----\n"
    monkeypatch.setenv("HOUSING_SIGNING_KEY", pem)
    monkeypatch.setenv("HOUSING_SIGNING_KEY_FILE", "/etc/housing/signing.pem")
    secrets = secrets_in(None)
    assert pem in secrets and "MC4CAQAwBQYDK2VwBCIEIAbCdEf" in secrets
    assert "/etc/housing/signing.pem" not in secrets
    out = redact("bad key MC4CAQAwBQYDK2VwBCIEIAbCdEf in /etc/housing/signing.pem", secrets)
    assert out == f"bad key {MASK} in /etc/housing/signing.pem"
