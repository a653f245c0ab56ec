"""The README's commands and links as a reader sees them, for the tests that run or check them.

A command is a line of a fenced ``bash`` (``sh``, ``shell``) block as a user types it: lines
ending in ``\\`` joined to the next, a trailing ``# comment`` dropped, the rest kept exactly.
Tests that prove a README command take its text from here (:func:`readme_command`), so the
README's text is what runs; ``tests/ci/test_readme.py`` checks that every command has such a
test and that every relative link and anchor resolves.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
SHELL_FENCES = {"bash", "sh", "shell"}

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?P<text>(?:[^\[\]]|\[[^\]]*\])*)\]\((?P<target><[^>]*>|[^)\s]+)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+(?P<target>\S+)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
_HTML_ID = re.compile(r"""<[^>]+\b(?:id|name)\s*=\s*["']([^"']+)["']""")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


@dataclass(frozen=True)
class Link:
    """A relative link: ``path`` ("" for this file) and ``anchor`` ("" for none), by line."""

    source: Path
    line: int
    target: str
    path: str
    anchor: str


def _split_blocks(text: str) -> tuple[list[tuple[int, str]], list[tuple[str, list[str]]]]:
    """(prose lines with their numbers, fenced blocks as (info word, lines))."""
    prose: list[tuple[int, str]] = []
    blocks: list[tuple[str, list[str]]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match[1]
            blocks.append((match[2].lower(), []))
        elif fence is None:
            prose.append((number, line))
        elif re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", line):
            fence = None  # the closing fence: the same character, at least as many
        else:
            blocks[-1][1].append(line)
    return prose, blocks


def _strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` that starts a word, outside quotes)."""
    quote = None
    escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def shell_commands(block: list[str]) -> list[str]:
    """The commands of one shell block: continuations joined with one space, comments dropped."""
    commands: list[str] = []
    pending = ""
    for raw in block:
        line = _strip_comment(raw.strip())
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            commands.append(line)
    if pending.strip():
        commands.append(pending.strip())
    return commands


def commands(path: Path = README) -> list[str]:
    """Every command of the shell blocks of ``path``, in order, each once."""
    _, blocks = _split_blocks(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for info, lines in blocks:
        if info in SHELL_FENCES:
            found.extend(c for c in shell_commands(lines) if c not in found)
    return found


def readme_command(prefix: str, path: Path = README) -> str:
    """The one README command that is ``prefix`` or starts with ``prefix`` and a space.

    Tests run what this returns, so a README edit changes what they run; no match, or more
    than one, fails with the README's commands listed.
    """
    matches = [c for c in commands(path) if c == prefix or c.startswith(prefix + " ")]
    if len(matches) != 1:
        listed = "\n  ".join(commands(path))
        raise LookupError(
            f"{len(matches)} commands of {path.name} start with {prefix!r}; it has:\n  {listed}"
        )
    return matches[0]


def readme_argv(prefix: str, path: Path = README) -> list[str]:
    """:func:`readme_command` split into words as the shell splits them (no expansion)."""
    return shlex.split(readme_command(prefix, path))


def _plain_heading(text: str) -> str:
    """A heading's rendered text: code, link and emphasis markup removed."""
    text = _INLINE_CODE.sub(lambda m: m[2].strip(), text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)


def github_slug(text: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped,
    each space a hyphen (no collapsing)."""
    return re.sub(r"[^\w\- ]", "", _plain_heading(text).strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives ``path``: heading slugs (repeats get ``-1``, ``-2``...) and
    explicit ``id``/``name`` attributes."""
    prose, _ = _split_blocks(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose:
        found.update(_HTML_ID.findall(line))
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match["text"])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(path: Path) -> list[Link]:
    """Every link of ``path``'s prose that is not a URL: ``[..](path)``, ``(path#anchor)``,
    ``(#anchor)`` and reference definitions; code blocks and inline code are not prose."""
    prose, _ = _split_blocks(path.read_text(encoding="utf-8"))
    links: list[Link] = []
    for number, line in prose:
        text = _INLINE_CODE.sub(lambda m: " " * len(m[0]), line)
        targets = [m["target"] for m in _LINK.finditer(text)]
        targets += [m["target"] for m in _REFERENCE.finditer(text)]
        for target in targets:
            target = target.strip("<>")
            if _EXTERNAL.match(target):
                continue
            file, _, anchor = target.partition("#")
            links.append(Link(path, number, target, file, anchor))
    return links
