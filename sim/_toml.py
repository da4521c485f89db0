"""Reading typed fields from a TOML table, with errors that name the file and the field.

Shared by the org file (sim.platform.org) and scenarios (sim.load.scenario).
"""

from __future__ import annotations

from typing import Any

from sim.errors import ConfigError

__all__ = ["TableReader"]


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
