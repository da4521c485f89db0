"""Reading typed fields from a TOML table, with errors that name the file and the field.

Shared by the org file (sim.platform.org) and scenarios (sim.load.scenario).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from sim._files import read_bounded
from sim.errors import ConfigError

__all__ = ["TableReader", "read_toml_file", "MAX_FILE_BYTES"]

MAX_FILE_BYTES = 1 << 20
"""Scenario and org files are small; anything larger is a mistake (and would be echoed in errors)."""


def read_toml_file(path: str | Path, *, what: str) -> dict[str, Any]:
    """The TOML table in ``path``; every way it can be wrong is one ConfigError naming the file."""
    source = str(path)
    raw = read_bounded(path, what=what, max_bytes=MAX_FILE_BYTES)
    if b"\0" in raw:
        raise ConfigError(f"is a binary file, not {what} (TOML text)", source=source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"is not UTF-8 text (byte {exc.start}); save it as UTF-8", source=source) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from None
    except RecursionError:
        raise ConfigError("not valid TOML: nested too deeply", source=source) from None


class TableReader:
    """Reads typed fields from a TOML table, raising ConfigError that names file and field."""

    def __init__(self, table: Any, source: str, path: str) -> None:
        if not isinstance(table, dict):
            raise ConfigError("must be a table", source=source, field=path or "<root>")
        self.table = table
        self.source = source
        self.path = path

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, field=self._name(key))

    def check_keys(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.table) - allowed)
        if unknown:
            raise self.fail(unknown[0], f"unknown field; allowed: {', '.join(sorted(allowed))}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, minimum: float | None = None,
            maximum: float | None = None, choices: tuple[Any, ...] | None = None) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "is required")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"must be {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(key, f"must be a finite number, got {value!r}")
        if not isinstance(value, kinds):
            raise self.fail(key, f"must be {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        if minimum is not None and isinstance(value, (int, float)) and value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value!r}")
        if maximum is not None and isinstance(value, (int, float)) and value > maximum:
            raise self.fail(key, f"must be <= {maximum}, got {value!r}")
        if choices is not None and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value

    def sub(self, key: str) -> TableReader | None:
        if key not in self.table:
            return None
        return TableReader(self.table[key], self.source, self._name(key))

    def list_of_tables(self, key: str) -> list[TableReader]:
        items = self.table.get(key, [])
        if not isinstance(items, list):
            raise self.fail(key, "must be an array of tables ([[...]])")
        return [TableReader(item, self.source, f"{self._name(key)}[{i}]") for i, item in enumerate(items)]
