"""One error tree for flowsim.

Everything flowsim raises on purpose derives from :class:`FlowsimError`. Errors that come from the
(real or simulated) platform carry the vendor's ErrorBody fields so a caller can act on the
``code`` rather than on a message string.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FlowsimError", "ConfigError", "PlatformError", "TransportError", "EXIT_USAGE"]

EXIT_USAGE = 2
"""What every flowsim command exits with when it refuses its input or setup (one line on stderr)."""


class FlowsimError(Exception):
    """Root of every error flowsim raises deliberately."""


class ConfigError(FlowsimError):
    """A scenario, org file or flag is wrong. The message names the file, field and allowed values."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.source = source
        self.field = field
        prefix = ""
        if source:
            prefix += f"{source}: "
        if field:
            prefix += f"{field}: "
        super().__init__(prefix + message)


class PlatformError(FlowsimError):
    """An error answer from the platform API, with the vendor's ErrorBody fields."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        context_id: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.context_id = context_id
        self.details = details or []
        # The contextId stays an attribute, not part of the text: Locust groups failures by their text.
        super().__init__(f"{status} {code}: {message}")

    @classmethod
    def from_body(cls, status: int, body: Any) -> PlatformError:
        """Build from a decoded ErrorBody; tolerate bodies that are not ErrorBodies (proxies, HTML)."""
        if isinstance(body, dict):
            return cls(
                status=int(body.get("status") or status),
                code=str(body.get("code") or "unknown"),
                message=str(body.get("message") or ""),
                context_id=body.get("contextId"),
                details=body.get("details") if isinstance(body.get("details"), list) else None,
            )
        return cls(status=status, code="unknown", message=str(body)[:200])


class TransportError(FlowsimError):
    """The request never got an HTTP answer (connection refused, dropped, timed out)."""
