"""Strip credentials from text the API sends before the app shows it (defence in depth)."""

from __future__ import annotations

import re

# scheme://user:password@host  ->  scheme://***@host
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@]+@")
# password=..., token: ..., api_key=... in query strings or messages
_SECRET_PAIR = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>[^\s&;,'\"]+)"
)


def redact(text: str) -> str:
    """``text`` with URI user-info and ``password=…``-style values replaced by ``***``."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_PAIR.sub(r"\g<key>\g<sep>***", text)
