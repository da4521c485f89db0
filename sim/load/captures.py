"""Values a conversation script takes from an answer and says again later: ``capture = { order = "order (\\d+)" }``
on a turn's (or message's) ``expect`` keeps the first group of that regular expression, searched in the answer
(or the replies), as ``{capture.order}`` for the script's later lines. Shared by bot and Open Messaging scripts.
A capture that finds nothing is a broken expectation, and its placeholder says nothing.
"""

from __future__ import annotations

import re
from typing import Any

from sim._toml import TableReader
from sim.load.breaks import broken
from sim.load.template import placeholders

__all__ = ["parse_captures", "check_lines", "apply_captures", "pattern", "MAX_PATTERN"]

MAX_PATTERN = 500
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,31}")


def pattern(e: TableReader, key: str) -> str | None:
    """A regular expression from the file, checked (bounded length, compiles)."""
    regex: str | None = e.get(key, str, None)
    if regex is None:
        return None
    if len(regex) > MAX_PATTERN:
        raise e.fail(key, f"is longer than {MAX_PATTERN} characters")
    try:
        re.compile(regex)
    except re.error as exc:
        raise e.fail(key, f"is not a regular expression: {exc}") from None
    return regex


def parse_captures(e: TableReader) -> dict[str, str]:
    """``capture``: names (lower case, digits, _) to regular expressions."""
    sub = e.sub("capture")
    if sub is None:
        return {}
    out = {}
    for name in sub.table:
        if not _NAME.fullmatch(str(name)):
            raise sub.fail(str(name), "a capture's name is 1-32 lower-case letters, digits or _ (starting with a letter)")
        regex = pattern(sub, str(name))
        assert regex is not None
        out[str(name)] = regex
    return out


def check_lines(t: TableReader, key: str, lines: list[Any], fields: tuple[str, ...], captured: set[str]) -> None:
    """Each line's placeholders are template fields or values captured by an earlier step."""
    allowed = (*fields, *(f"capture.{c}" for c in sorted(captured)))
    for line in lines:
        try:
            names = placeholders(line)
        except ValueError as exc:
            raise t.fail(key, str(exc)) from None
        for name in names:
            if name not in allowed:
                raise t.fail(key, f"unknown placeholder {{{name}}}" + (
                    " (a capture is said only after the step that captures it)" if name.startswith("capture.") else "")
                    + "; allowed: " + ", ".join("{" + f + "}" for f in allowed))


def apply_captures(capture: dict[str, str], text: str, into: dict[str, str]) -> list[dict[str, str]]:
    """Search each capture in ``text``; keep what it found in ``into``; what found nothing, as broken checks."""
    out = []
    for name, regex in capture.items():
        m = re.search(regex, text, re.IGNORECASE)
        if m is None:
            into.pop(name, None)
            out.append(broken(f"capture {name}", regex, text, f"capture {name}: /{regex}/ found nothing in {text[:120]!r}"))
        else:
            into[name] = (m.group(1) if m.groups() else m.group(0)) or ""
    return out
