"""flowsim's webhook receiver for Open Messaging runs: a small gevent WSGI server in front of an
:class:`~sim.load.inbox.Inbox`. Each POST is answered at once with the inbox's status — never after waiting on
a customer's logic, always well inside the platform's 10 s deadline — and a body is read only up to the inbox's
limit (a larger one is refused before it is read). Binds loopback unless told otherwise; serves HTTPS when given
a certificate and key. No locust import.

It also serves ``POST /_flowsim/replies`` to the run's other load processes (``sim.run.replies``): keyed, never
on the webhook's path.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from gevent.pywsgi import WSGIServer

from sim.load.inbox import Inbox

__all__ = ["Receiver", "STATUS_TEXT", "REPLIES_PATH", "KEY_HEADER"]

STATUS_TEXT = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 404: "404 Not Found",
               405: "405 Method Not Allowed", 411: "411 Length Required", 413: "413 Payload Too Large"}
REPLIES_PATH = "/_flowsim/replies"
KEY_HEADER = "x-flowsim-key"
_MAX_TAKE_BYTES = 4_000_000

_Take = Callable[[dict[str, Any]], dict[str, Any]]


class Receiver:
    """``Receiver(inbox, host, port).start()``; ``url`` is where the integration's webhook must point. ``take``
    (with ``key``): the replies endpoint for the run's other processes."""

    def __init__(self, inbox: Inbox, *, host: str = "127.0.0.1", port: int = 0, path: str = "/webhook",
                 take: _Take | None = None, key: str = "", tls: tuple[str, str] | None = None) -> None:
        self.inbox, self.path, self._take, self._key = inbox, path, take, key
        self.scheme = "https" if tls else "http"
        ssl = {"certfile": tls[0], "keyfile": tls[1]} if tls else {}
        self.server = WSGIServer((host, port), self._app, log=None, error_log=None, **ssl)

    @property
    def url(self) -> str:
        host, port = self.server.address[:2]
        return f"{self.scheme}://{host}:{port}{self.path}"

    @property
    def replies_url(self) -> str:
        host, port = self.server.address[:2]
        return f"{self.scheme}://{host}:{port}{REPLIES_PATH}"

    def start(self) -> Receiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(timeout=1)

    def _app(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == REPLIES_PATH and self._take is not None:
            status, body = self._replies(environ)
        else:
            status, body = self._status(environ), b""
        start(STATUS_TEXT[status], [("Content-Length", str(len(body))), ("Content-Type", "application/json")])
        return [body]

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

    def _replies(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        assert self._take is not None
        if environ.get("REQUEST_METHOD") != "POST":
            return 405, b""
        if not hmac.compare_digest(environ.get("HTTP_X_FLOWSIM_KEY", "").encode(), self._key.encode()):
            return 401, b""
        length = environ.get("CONTENT_LENGTH") or ""
        if not length.isdigit():
            return 411, b""
        if int(length) > _MAX_TAKE_BYTES:
            return 413, b""
        try:
            body = orjson.loads(environ["wsgi.input"].read(int(length)))
            if not isinstance(body, dict):
                raise TypeError
        except (orjson.JSONDecodeError, TypeError):
            return 400, b""
        return 200, orjson.dumps(self._take(body))
