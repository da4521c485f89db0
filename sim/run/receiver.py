"""flowsim's webhook receiver for Open Messaging runs: a small gevent WSGI server in front of an
:class:`~sim.load.inbox.Inbox`. Each POST is answered at once with the inbox's status — never after waiting on
a customer's logic, always well inside the platform's 10 s deadline — and a body is read only up to the inbox's
limit (a larger one is refused before it is read). Binds loopback unless told otherwise. No locust import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gevent.pywsgi import WSGIServer

from sim.load.inbox import Inbox

__all__ = ["Receiver", "STATUS_TEXT"]

STATUS_TEXT = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 404: "404 Not Found",
               405: "405 Method Not Allowed", 411: "411 Length Required", 413: "413 Payload Too Large"}


class Receiver:
    """``Receiver(inbox, host, port).start()``; ``url`` is where the integration's webhook must point."""

    def __init__(self, inbox: Inbox, *, host: str = "127.0.0.1", port: int = 0, path: str = "/webhook") -> None:
        self.inbox, self.path = inbox, path
        self.server = WSGIServer((host, port), self._app, log=None, error_log=None)

    @property
    def url(self) -> str:
        host, port = self.server.address[:2]
        return f"http://{host}:{port}{self.path}"

    def start(self) -> Receiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(timeout=1)

    def _app(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        status = self._status(environ)
        start(STATUS_TEXT[status], [("Content-Length", "0")])
        return [b""]

    def _status(self, environ: dict[str, Any]) -> int:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != self.path:
            return 405 if environ.get("PATH_INFO") == self.path else 404
        length = environ.get("CONTENT_LENGTH") or ""
        if not length.isdigit():
            return 411
        if self.inbox.too_large(int(length)):
            return 413
        raw = environ["wsgi.input"].read(int(length))
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        return self.inbox.deliver(raw, headers)[0]
