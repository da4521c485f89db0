"""A TCP relay to put a network between flowsim and its target in tests: delay each way (with jitter), resets,
a stall (bytes held, nothing answered), an outage (nothing listens: connections refused). It logs when each
launch's request reached it, so a test can check the ledger's ``sent_at`` against the wire.

Loopback only. One asyncio loop in a thread; order is kept per direction (each chunk is delivered ``delay_s``
after it was read, in read order)."""

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
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
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
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            _reset(w)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(client_w)
            return
        self._writers.update((client_w, server_w))
        pair = (client_w, server_w)
        await asyncio.gather(self._pipe(client_r, server_w, pair, upstream=True),
                             self._pipe(server_r, client_w, pair, upstream=False), return_exceptions=True)
        self._writers.difference_update(pair)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter], *, upstream: bool) -> None:
        last_due = 0.0
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                now = time.time()
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


def _write(w: asyncio.StreamWriter, data: bytes) -> None:
    if not w.is_closing():
        w.write(data)


def _reset(w: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dropped connection on a real network looks."""
    sock = w.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    w.transport.abort()


@contextmanager
def relay(target_port: int, **kw: float) -> Iterator[Relay]:
    r = Relay(target_port, **kw)  # type: ignore[arg-type]
    try:
        yield r
    finally:
        r.close()
