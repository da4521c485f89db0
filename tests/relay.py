"""A TCP relay to put a network between flowsim and its target in tests: delay each way (with jitter), resets,
a stall (bytes held, nothing answered), an outage (nothing listens: connections refused). It logs when each
launch's request reached it, so a test can check the ledger's ``sent_at`` against the wire.

Loopback only. One asyncio loop in a thread; order is kept per direction (each chunk is delivered ``delay_s``
after it was read, in read order). When a request reached the relay is the kernel's receive time of its bytes
(SO_TIMESTAMPNS), not when this thread — which a busy machine can leave unscheduled for 100 ms and more — got
round to reading them."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Relay", "relay"]

_NAME = re.compile(rb'"name":"([^"]{1,200})"')


class Relay:
    def __init__(self, target_port: int, *, delay_s: float = 0.05, jitter_s: float = 0.0, reset_rate: float = 0.0,
                 seed: int = 1) -> None:
        self.target_port = target_port
        self.delay_s, self.jitter_s, self.reset_rate = delay_s, jitter_s, reset_rate
        self.rng = random.Random(seed)
        self.sent_at: dict[str, float] = {}
        """Launch name → wall-clock time its request's first bytes reached the relay."""
        self.connections = 0
        self.resets = 0
        self._stalled = False
        self._loop = asyncio.new_event_loop()
        self._server: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._writers: set[Any] = set()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="relay")
        self._thread.start()
        self._call(self._listen())

    # -- control, from the test's thread -----------------------------------------------------------------
    def stall(self, on: bool = True) -> None:
        """Hold every byte from now on, both ways (the target hangs); ``False`` lets them through again."""
        self._stalled = on

    def outage(self) -> None:
        """Nothing listens any more: new connections are refused; open ones are reset."""
        self._call(self._close_all())

    def restore(self) -> None:
        self._stalled = False
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._close_all())
        self._call(self._cancel_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _cancel_all(self) -> None:
        tasks = [t for t in asyncio.all_tasks(self._loop) if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the loop's side -----------------------------------------------------------------------------------
    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", self.port))
            srv.listen(512)
            srv.setblocking(False)
            self._server = srv
            self._accepting = self._loop.create_task(self._accept_loop(srv))

    async def _close_all(self) -> None:
        if self._server is not None:
            if self._accepting is not None:
                self._accepting.cancel()
            self._server.close()
            self._server = None
        for w in list(self._writers):
            _reset(w)

    async def _accept_loop(self, srv: socket.socket) -> None:
        while True:
            client, _ = await self._loop.sock_accept(srv)
            client.setblocking(False)
            client.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self._loop.create_task(self._accept(client))

    async def _accept(self, client: socket.socket) -> None:
        self.connections += 1
        client_w = _SockWriter(client, self._loop)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(client_w)
            return
        self._writers.update((client_w, server_w))
        pair = (client_w, server_w)
        await asyncio.gather(self._pipe(_SockReader(client, self._loop), server_w, pair, upstream=True),
                             self._pipe(server_r, client_w, pair, upstream=False), return_exceptions=True)
        self._writers.difference_update(pair)

    async def _pipe(self, src: Any, dst: Any, pair: tuple[Any, Any], *, upstream: bool) -> None:
        last_due = 0.0
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                now = getattr(src, "arrived", None) or time.time()
                if upstream:
                    if b"POST /api/v2/flows/executions " in data:
                        m = _NAME.search(data)
                        if m:
                            self.sent_at.setdefault(m.group(1).decode(), now)
                    if self.reset_rate and self.rng.random() < self.reset_rate:
                        self.resets += 1
                        for w in pair:
                            _reset(w)
                        return
                while self._stalled:
                    await asyncio.sleep(0.05)
                due = max(last_due, time.monotonic() + self.delay_s + self.rng.uniform(0, self.jitter_s))
                last_due = due
                self._loop.call_at(self._loop.time() + (due - time.monotonic()), _write, dst, data)
        except (ConnectionError, OSError):
            pass
        finally:
            await asyncio.sleep(max(0.0, last_due - time.monotonic()) + 0.001)
            if not dst.is_closing():
                try:
                    dst.write_eof()
                except (OSError, RuntimeError):
                    dst.close()


_TIMESPEC = struct.Struct("qq")
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux's SO_TIMESTAMPNS (35 on x86-64 and arm64; Python's socket module does not name it): each recvmsg then
carries the kernel's receive time of its first bytes (a timespec, SCM_TIMESTAMPNS = the same number)."""


class _SockReader:
    """Reads a client socket with recvmsg, keeping the kernel's receive time of what it read (``arrived``)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock, self.loop, self.arrived = sock, loop, 0.0

    async def read(self, n: int) -> bytes:
        while True:
            fd = self.sock.fileno()
            if fd == -1:  # closed by the relay (a reset): the end of this direction
                return b""
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(n, socket.CMSG_SPACE(_TIMESPEC.size))
            except BlockingIOError:
                ready = self.loop.create_future()
                self.loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
                try:
                    await asyncio.wait_for(asyncio.shield(ready), 0.5)  # and look again whether it was closed
                except asyncio.TimeoutError:
                    pass
                finally:
                    self.loop.remove_reader(fd)
                continue
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack(value[:_TIMESPEC.size])
                    self.arrived = sec + nsec / 1e9
            return data


class _SockWriter:
    """A client socket's writing side with what the relay needs of an asyncio StreamWriter: ordered writes."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock, self.loop = sock, loop
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False
        self.task = loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while (data := await self.queue.get()) is not None:
                await self.loop.sock_sendall(self.sock, data)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()

    def write(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def write_eof(self) -> None:
        self.queue.put_nowait(None)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.task.cancel()
            self.sock.close()


def _write(w: Any, data: bytes) -> None:
    if not w.is_closing():
        w.write(data)


def _reset(w: Any) -> None:
    """Close with RST (SO_LINGER 0), as a dropped connection on a real network looks."""
    sock = w.sock if isinstance(w, _SockWriter) else w.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    w.close() if isinstance(w, _SockWriter) else w.transport.abort()


@contextmanager
def relay(target_port: int, **kw: float) -> Iterator[Relay]:
    r = Relay(target_port, **kw)  # type: ignore[arg-type]
    try:
        yield r
    finally:
        r.close()
