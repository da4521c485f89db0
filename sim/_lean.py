"""Two libraries every flowsim process uses, imported without the optional extras that flowsim never calls on:
httpx pulls in its command-line tool's click, rich and pygments, structlog its pretty tracebacks' rich (and through
it attrs and pygments) — ~0.15 s of imports in each process (the parent, the embedded simulator, each Locust
process), all on the way to a run's first launch. The extras are hidden only while these two import (``import x``
then raises ImportError, which both handle as "not installed"); anything else that wants rich (the terminal views)
imports it as usual. Done once, from ``sim/__init__.py``."""

from __future__ import annotations

import importlib
import sys

__all__ = ["import_lean", "LIBRARIES", "EXTRAS"]

LIBRARIES = ("structlog", "httpx")
EXTRAS = ("rich", "click", "pygments")


def import_lean(libraries: tuple[str, ...] = LIBRARIES, extras: tuple[str, ...] = EXTRAS) -> None:
    """Import ``libraries`` with ``extras`` hidden (those not imported yet; a library imported already is left)."""
    todo = [lib for lib in libraries if lib not in sys.modules]
    hidden = [m for m in extras if m not in sys.modules]
    if not todo:
        return
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        for lib in todo:
            importlib.import_module(lib)
    finally:
        for m in hidden:
            if sys.modules.get(m) is None:
                del sys.modules[m]
