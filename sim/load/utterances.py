"""Utterance sets: many ways of saying one thing, kept in a file and used by scripts. A scenario names its sets
(``[utterances] order_status = "utterances/order_status.txt"``, paths relative to the scenario), one utterance a
line (blank lines and ``#`` comments skipped, placeholders as in ``say``); a scripted turn or message says one of
a set with ``say_from = "order_status"`` and ``pick``:

- ``"random"`` (the default): one at random per conversation (seeded like ``say`` alternatives);
- ``"all"``: conversation n says the n-th (cycling), so a run of as many conversations covers every one;
- ``"first"``: always the first;
- a number N: N of them drawn once (seeded by the scenario's ``seed``), cycled like ``all``.

A bad file or line is one error naming the file, the line and what is wrong.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from sim._toml import TableReader
from sim.errors import ConfigError
from sim.load.template import placeholders

__all__ = ["load_sets", "lines_for", "pick_line", "MAX_FILE_BYTES", "MAX_LINES", "PICKS"]

MAX_FILE_BYTES = 1_000_000
MAX_LINES = 10_000
_MAX_LINE = 500
PICKS = ("random", "all", "first")


def _read(name: str, path: Path, fields: tuple[str, ...], source: str, shown: str) -> tuple[str, ...]:
    """``shown``: the path as the scenario writes it (errors name it, and the scenario as their source)."""
    where = source
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{shown} is larger than {MAX_FILE_BYTES:,} bytes", source=where, field=f"utterances.{name}")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{shown} cannot be read ({exc.strerror or exc})", source=where, field=f"utterances.{name}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown} is not UTF-8 text", source=where, field=f"utterances.{name}") from None
    out = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > _MAX_LINE:
            raise ConfigError(f"{shown} line {n}: longer than {_MAX_LINE} characters", source=where, field=f"utterances.{name}")
        try:
            names = placeholders(line)
        except ValueError as exc:
            raise ConfigError(f"{shown} line {n}: {exc}", source=where, field=f"utterances.{name}") from None
        bad = [p for p in names if p not in fields]
        if bad:
            raise ConfigError(f"{shown} line {n}: unknown placeholder {{{bad[0]}}} (utterance files may use "
                              + ", ".join("{" + f + "}" for f in fields) + ")", source=where, field=f"utterances.{name}")
        out.append(line)
        if len(out) > MAX_LINES:
            raise ConfigError(f"{shown} holds more than {MAX_LINES:,} utterances", source=where, field=f"utterances.{name}")
    if not out:
        raise ConfigError(f"{shown} holds no utterance (one a line; # starts a comment)", source=where, field=f"utterances.{name}")
    return tuple(out)


def load_sets(data: dict[str, Any], source: str, fields: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The scenario's ``[utterances]``: set name → its utterances, each file read and checked once."""
    table = TableReader(data.get("utterances", {}), source, "utterances")
    base = Path(source).parent
    out = {}
    for name in table.table:
        path = table.get(name, str)
        out[name] = _read(name, base / path if not Path(path).is_absolute() else Path(path), fields, source, path)
    return out


def lines_for(t: TableReader, sets: dict[str, tuple[str, ...]], seed: int | None) -> tuple[tuple[str, ...], str] | None:
    """A turn's ``say_from`` and ``pick``: (its lines, "random" or "cycle"); None when it has no ``say_from``."""
    name = t.get("say_from", str, None)
    if name is None:
        if "pick" in t.table:
            raise t.fail("pick", "goes with say_from (an utterance set)")
        return None
    if "say" in t.table:
        raise t.fail("say_from", "a turn says either say or say_from, not both")
    if name not in sets:
        raise t.fail("say_from", f"unknown utterance set {name!r}; [utterances] has: {', '.join(sets) or 'none'}")
    lines, pick = sets[name], t.table.get("pick", "random")
    if isinstance(pick, int) and not isinstance(pick, bool):
        if not 1 <= pick <= len(lines):
            raise t.fail("pick", f"must be 1 to {len(lines)} (the set's size), got {pick}")
        return tuple(random.Random(f"{seed}-{name}").sample(lines, pick)), "cycle"
    if pick not in PICKS:
        raise t.fail("pick", f"must be one of {', '.join(PICKS)} or a number of utterances, got {str(pick)[:40]!r}")
    return ((lines[0],), "cycle") if pick == "first" else (lines, "cycle" if pick == "all" else "random")


def pick_line(lines: tuple[str, ...], pick: str, rng: random.Random, seq: int) -> str:
    """The line a conversation says: at random, or (``cycle``) the seq-th."""
    return lines[seq % len(lines)] if pick == "cycle" else rng.choice(lines)
