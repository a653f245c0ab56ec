"""One shape for a command's expected failures: ``error: <one line>`` on stderr, exit 1.

Every command a user types (``housing-registry``, ``housing-sweep``, ``housing-sign``,
``python -m serve``, the scripts) reports a failure they can act on (a missing file, an
unknown version, an unreachable server, a bad setting) as one line naming the problem and a
non-zero exit. Usage errors (an unknown option, a value of the wrong type) are left to
argparse and Click, which print the usage line and exit 2. A traceback means a bug.

Nothing heavy is imported here: the API image and the signing verifier use this module too.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from pydantic import ValidationError

logger = logging.getLogger(__name__)

FAILURE = 1
USAGE = 2
# Field names whose values an error line never repeats.
_SECRET_WORDS = ("token", "password", "secret")
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def one_line(exc: BaseException) -> str:
    """What went wrong in one line: ``path: reason`` for OS errors, else the first line."""
    if isinstance(exc, OSError) and exc.strerror:
        names = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
        return ": ".join([" -> ".join(names), exc.strerror] if names else [exc.strerror])
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def fail(message: str, code: int = FAILURE) -> NoReturn:
    """End the command: ``error: <message>`` on stderr, exit status ``code``."""
    first = [line.strip() for line in message.splitlines() if line.strip()]
    sys.stderr.write(f"error: {first[0] if first else 'failed'}\n")
    sys.stderr.flush()
    raise SystemExit(code)


@contextlib.contextmanager
def expected_errors(*types: type[BaseException], code: int = FAILURE) -> Iterator[None]:
    """Inside the block, an exception of one of ``types`` ends the command via :func:`fail`.

    The traceback is still logged at DEBUG, for whoever turns that level on.
    """
    try:
        yield
    except types as exc:
        logger.debug("expected failure", exc_info=True)
        fail(one_line(exc), code)


def _dotted(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


def validation_line(
    exc: ValidationError, name: Callable[[Sequence[int | str]], str] = _dotted
) -> str:
    """A pydantic ``ValidationError`` as one line: ``NAME: reason (got VALUE); ...``.

    ``name`` turns an error's location into what the user wrote (an environment variable,
    a dotted params key); errors of a whole-model validator carry their own subject.
    """
    parts = []
    for error in exc.errors(include_url=False):
        message = error["msg"]
        for prefix in _PYDANTIC_PREFIXES:
            message = message.removeprefix(prefix)
        loc = error.get("loc", ())
        if not loc:
            parts.append(message)
            continue
        subject = name(loc)
        value = error.get("input")
        secret = any(word in subject.lower() for word in _SECRET_WORDS)
        if isinstance(value, str | int | float) and not secret:
            message = f"{message} (got {value!r})"
        parts.append(f"{subject}: {message}")
    return "; ".join(parts) or one_line(exc)
