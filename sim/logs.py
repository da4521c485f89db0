"""structlog configuration: done once, at an entry point, with secrets redacted.

The one unavoidable global of flowsim lives here. :func:`configure` is called by the CLI and by the
Locust side at start-up; :func:`reset` undoes it for tests.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure", "reset", "redact", "get_logger", "REDACTED", "JSON_ENV"]

REDACTED = "[REDACTED]"

# Keys whose values are secrets wherever they appear in an event dict.
_SECRET_KEYS = frozenset(
    {
        "access_token",
        "token",
        "client_secret",
        "secret",
        "password",
        "authorization",
        "bearer",
        "api_key",
    }
)
# Secrets embedded in free text: "Bearer xyz", "Basic xyz", access_token=xyz / "client_secret": "xyz".
_TEXT_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/=]+"),
    re.compile(r"(?i)((?:access_token|client_secret|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&}]+"),
)


def _redact_text(text: str) -> str:
    text = _TEXT_PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _TEXT_PATTERNS[1].sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def _redact_value(key: str, value: Any) -> Any:
    if key.lower().replace("-", "_") in _SECRET_KEYS:
        return REDACTED
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value("", v) for v in value]
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: replace secrets (by key, or embedded in text) with ``[REDACTED]``."""
    return {k: _redact_value(k, v) for k, v in event_dict.items()}


JSON_ENV = "FLOWSIM_LOG_JSON"
"""Set to 1 (``flowsim run --log-json``): JSON log lines, in this process and the Locust processes it starts."""


def configure(*, level: str = "info", json: bool | None = None, stream: TextIO | None = None) -> None:
    """Configure structlog once. ``json=None``: JSON when ``FLOWSIM_LOG_JSON=1``, else plain key=value lines."""
    out = stream if stream is not None else sys.stderr
    use_json = os.environ.get(JSON_ENV) == "1" if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; allowed: debug, info, warning, error")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )


def reset() -> None:
    """Undo :func:`configure` (for tests)."""
    structlog.reset_defaults()


def get_logger(**context: Any) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger().bind(**context)
