"""An open-loop HTTP/1.1 load generator: requests evenly spaced at a fixed rate over keep-alive connections.

hey's ``-q`` starts all its workers' tickers together, so it sends bursts of ``-c`` requests at once
and measures the burst's queueing rather than the server. This sends request ``i`` at
``t0 + i/rate`` on any idle connection and times it from that intended instant, so a slow server
cannot hide behind a late send (coordinated omission).

    python bench/_openloop.py URL PATH RATE SECONDS BODY AUTH_HEADER  → one JSON line
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import uvloop


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run(url: str, path: str, rate: float, seconds: float, body: bytes, auth: str,
              connections: int = 32) -> dict[str, float]:
    host = urlsplit(url).hostname or "127.0.0.1"
    port = urlsplit(url).port or 80
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Authorization: {auth}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, port))
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    t0 = time.perf_counter() + 0.05

    async def one(intended: float) -> None:
        nonlocal errors
        conn = await idle.get()
        conn[1].write(request)
        status = await _read_response(conn[0])
        latencies.append(time.perf_counter() - intended)
        errors += status != 200
        idle.put_nowait(conn)

    tasks = []
    for i in range(total):
        intended = t0 + i / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(intended)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return {"rate_per_s": total / elapsed, "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "max_ms": latencies[-1] * 1000, "non_200": float(errors)}


if __name__ == "__main__":
    u, p, r, s, b, a = sys.argv[1:7]
    print(json.dumps(uvloop.run(run(u, p, float(r), float(s), b.encode(), a))))
