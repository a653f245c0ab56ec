"""Keep credentials out of every message: responses, log lines, exception text.

Two layers, because a secret can reach a message in two shapes:

- as part of a URI (``http://user:pw@host``, ``?token=...``): :func:`redact_uri` and the
  pattern pass of :func:`redact` drop the password of any ``scheme://user:pw@`` and the value of
  query parameters whose name says secret;
- quoted on its own by a library's exception (``"password 'pw' rejected"``, a URL-encoded
  copy, a header dump): :func:`redact` replaces every secret substring the caller knows
  (:func:`secrets_in` collects them from a URI and the environment), raw, percent-decoded and
  percent-encoded.

Stdlib only: the API imports this on its start-up path.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable

MASK = "***"

# Environment variables whose value is a credential (MLflow's, the API's own token, the
# promotion signing key as PEM text). HOUSING_SIGNING_KEY_FILE is a path, not a secret.
SECRET_ENV_VARS: tuple[str, ...] = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "ADMIN_TOKEN",
    "HOUSING_SIGNING_KEY",
)

# The password runs to the *last* ``@`` of the authority (greedy), so an unencoded ``@`` in
# it (``http://u:p@ss@h``) is masked whole; ``/ ? #`` and whitespace end the authority.
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/\s:@?#]*):(?P<pw>[^/\s?#]*)@"
)
# ``scheme://token@host``: a userinfo without a password is often a token itself.
_USER_ONLY = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/\s:?#]+)@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:[A-Za-z0-9_\-]*(?:password|passwd|pwd|token|secret|signature|sig|key|auth)"
    r"[A-Za-z0-9_\-]*)=)(?P<value>[^&;#\s\"']+)",
    re.IGNORECASE,
)
_MIN_SECRET_LEN = 3  # shorter "secrets" would mask ordinary characters all over a message


def redact_uri(uri: str | None) -> str:
    """``uri`` with any password (``user:pw@``) and secret-looking query values masked."""
    if not uri:
        return uri or ""
    return _pattern_pass(uri)


def secrets_in(*uris: str | None, env: bool = True) -> tuple[str, ...]:
    """The credential substrings of ``uris`` (userinfo passwords, secret query values), plus the
    values of :data:`SECRET_ENV_VARS` set in the environment when ``env``."""
    found: list[str] = []
    for uri in uris:
        if not uri:
            continue
        for match in _USERINFO.finditer(uri):
            found.append(match.group("pw"))
        for match in _USER_ONLY.finditer(uri):
            found.append(match.group("user"))
        for match in _SECRET_QUERY.finditer(uri):
            found.append(match.group("value"))
    if env:
        for name in SECRET_ENV_VARS:
            value = os.environ.get(name, "")
            found.append(value)
            # A PEM key may be quoted line by line: mask each base64 line on its own too.
            found.extend(
                line.strip() for line in value.splitlines() if not line.startswith("-----")
            )
    return tuple(dict.fromkeys(s for s in found if len(s) >= _MIN_SECRET_LEN))


def redact(text: object, secrets: Iterable[str] = ()) -> str:
    """``str(text)`` with every known secret (and its percent-coded forms) and every URI
    password replaced by :data:`MASK`."""
    out = str(text)
    variants: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < _MIN_SECRET_LEN:
            continue
        variants.update(
            {
                secret,
                urllib.parse.unquote(secret),
                urllib.parse.quote(secret, safe=""),
                urllib.parse.quote_plus(secret, safe=""),
                urllib.parse.quote(urllib.parse.unquote(secret), safe=""),
            }
        )
    # Longest first, so a secret that contains another is masked whole.
    for variant in sorted(
        (v for v in variants if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True
    ):
        out = out.replace(variant, MASK)
    return _pattern_pass(out)


def _pattern_pass(text: str) -> str:
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{MASK}@", text)
    text = _USER_ONLY.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m.group('key')}{MASK}", text)
