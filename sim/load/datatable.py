"""Data tables: one script multiplied into many. A scripted flow may name a CSV file (``data = "orders.csv"``,
relative to the scenario; a header row of column names, then one row per case); conversation n takes row n
(cycling), and its lines and expectations say ``{data.<column>}`` — what the customer says and what must come
back differ by row. A bad file or row is one error naming the file and the line.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from pathlib import Path
from typing import Any

from sim.errors import ConfigError

__all__ = ["load_table", "row_for", "fill", "fill_script", "MAX_ROWS", "MAX_FILE_BYTES"]

MAX_ROWS = 10_000
MAX_FILE_BYTES = 2_000_000
_COLUMN = re.compile(r"[a-z_][a-z0-9_]{0,31}")
_MAX_CELL = 500


def load_table(path_text: str, source: str, field: str) -> tuple[dict[str, str], ...]:
    """The rows of the CSV at ``path_text`` (relative to the scenario ``source``), checked."""
    path = Path(path_text) if Path(path_text).is_absolute() else Path(source).parent / path_text
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path_text} is larger than {MAX_FILE_BYTES:,} bytes", source=source, field=field)
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path_text} cannot be read ({exc.strerror or exc})", source=source, field=field) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path_text} is not UTF-8 text", source=source, field=field) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise ConfigError(f"{path_text} has no header row (column names)", source=source, field=field)
    columns = [h.strip() for h in header]
    bad = [c for c in columns if not _COLUMN.fullmatch(c)]
    if bad or len(set(columns)) != len(columns):
        raise ConfigError(f"{path_text} line 1: column names are 1-32 lower-case letters, digits or _, each once "
                          f"(got {bad[0] if bad else 'a repeated name'!r})", source=source, field=field)
    rows = []
    for n, row in enumerate(reader, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise ConfigError(f"{path_text} line {n}: {len(row)} values for {len(columns)} columns", source=source,
                              field=field)
        if any(len(cell) > _MAX_CELL for cell in row):
            raise ConfigError(f"{path_text} line {n}: a value longer than {_MAX_CELL} characters", source=source,
                              field=field)
        rows.append(dict(zip(columns, (cell.strip() for cell in row))))
        if len(rows) > MAX_ROWS:
            raise ConfigError(f"{path_text} has more than {MAX_ROWS:,} rows", source=source, field=field)
    if not rows:
        raise ConfigError(f"{path_text} has no rows under its header", source=source, field=field)
    return tuple(rows)


def row_for(rows: tuple[dict[str, str], ...], seq: int) -> dict[str, str]:
    """Conversation ``seq``'s row (cycling); {} without a table."""
    return rows[seq % len(rows)] if rows else {}


def fill(value: Any, row: dict[str, str]) -> Any:
    """``value`` with each ``{data.<column>}`` replaced by the row's value (strings, and lists/dicts of them)."""
    if not row:
        return value
    if isinstance(value, str):
        for k, v in row.items():
            value = value.replace("{data." + k + "}", v)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(fill(v, row) for v in value)
    if isinstance(value, dict):
        return {k: fill(v, row) for k, v in value.items()}
    return value


def fill_script(script: tuple[Any, ...], row: dict[str, str]) -> tuple[Any, ...]:
    """A script (turns or messages) for one conversation: its lines and expectations with the row's values."""
    if not row:
        return script
    out = []
    for spec in script:
        e = spec.expect
        values = {f.name: fill(getattr(e, f.name), row) for f in dataclasses.fields(e)
                  if isinstance(getattr(e, f.name), (str, tuple, dict))}
        out.append(dataclasses.replace(spec, say=fill(spec.say, row), expect=dataclasses.replace(e, **values)))
    return tuple(out)
