"""Serving the simulator with uvicorn: in the foreground (``flowsim serve``) or in a thread (tests, benches)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import logging
import socket
import threading
from collections.abc import Callable, Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sim import logs
from sim.platform.app import ConnectionDropped, create_app
from sim.platform.org import Org

__all__ = ["bind", "serve", "serve_announced", "SimulatorThread"]


class _QuietDrops(logging.Filter):
    """Injected connection drops are intended; keep their tracebacks out of the server log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ConnectionDropped):
            return False
        return "returned without completing response" not in record.getMessage()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; ``port=0`` picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # flowsim installs its own handlers before announcing the port (see serve); uvicorn's would
        # re-raise the signal after shutdown and turn a clean stop into exit status -15.
        yield


class _HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's protocol, plus: a request head not complete ``head_timeout_s`` after it began (or after the
    connection opened) closes the connection — half-open and trickling clients cannot pile up."""

    head_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _server(org: Org, seed: int, clock: Callable[[], float] | None, log_level: str,
            tls: tuple[str, str] | None = None) -> _Server:
    kwargs: dict[str, Any] = {"seed": seed}
    if clock is not None:
        kwargs["clock"] = clock
    config = uvicorn.Config(
        create_app(org, **kwargs),
        log_level=log_level,
        access_log=False,
        lifespan="off",
        http=type("_Protocol", (_HeadTimeoutProtocol,), {"head_timeout_s": org.settings.header_timeout_s}),
        loop="uvloop",
        timeout_keep_alive=30,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
        backlog=2048,
    )
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    return _Server(config)


def serve(org: Org, sock: socket.socket, *, seed: int = 0, log_level: str = "warning",
          announce: Callable[[], None] = lambda: None, tls: tuple[str, str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM, then shut down cleanly. ``announce`` runs once handlers are in place.
    ``tls``: (certificate chain, private key) PEM files: serve HTTPS."""
    server = _server(org, seed, None, log_level, tls)

    def stop(_sig: int, _frame: Any) -> None:
        server.should_exit = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    announce()
    server.run(sockets=[sock])


def serve_announced(org: Org, sock: socket.socket, *, seed: int = 0, tls: tuple[str, str] | None = None) -> None:
    """Serve on ``sock`` (from :func:`bind`) until SIGINT/SIGTERM, printing the line ``flowsim run`` waits for once
    the signal handlers are in place."""
    host, port = sock.getsockname()[:2]
    url = f"{'https' if tls else 'http'}://{host}:{port}"

    def announce() -> None:
        print(f"flowsim simulator listening on {url}", flush=True)  # `flowsim run` waits for this line: keep its shape
        logs.get_logger().info("simulator.started", url=url, org=org.name, seed=seed)

    serve(org, sock, seed=seed, log_level="warning", announce=announce, tls=tls)
    logs.get_logger().info("simulator.stopped")


class SimulatorThread:
    """The simulator on a loopback port in a background thread: ``with SimulatorThread(org) as sim: sim.url``."""

    def __init__(self, org: Org, *, seed: int = 0, clock: Callable[[], float] | None = None,
                 host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None) -> None:
        self._sock = bind(host, port)
        self.port = self._sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self._server = _server(org, seed, clock, "warning", tls)
        self._thread = threading.Thread(target=self._run, name="flowsim-simulator", daemon=True)

    def _run(self) -> None:
        self._server.run(sockets=[self._sock])

    @property
    def app(self) -> Any:
        return self._server.config.app

    def start(self) -> SimulatorThread:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("simulator did not start within 5 s")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
