"""An httpx transport on geventhttpclient: httpx stays the client API, the HTTP/1.1 engine under it is
the C-parser one Locust's FastHttpUser uses.

httpx's default transport (httpcore) costs about as much CPU per request as the rest of a launch
together (py-spy on bench/bench_harness.py); this one cuts that part. Used only inside Locust
processes (gevent); everything else uses httpx's default transport.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import gevent
import httpx
from geventhttpclient.client import HTTPClient
from geventhttpclient.response import HTTPParseError

from sim.load.network import gevent_ssl_factory, proxy_for

__all__ = ["GeventTransport"]


class GeventTransport(httpx.BaseTransport):
    """One small keep-alive pool per (scheme, host, port); ``concurrency`` connections each."""

    def __init__(self, *, timeout_s: float, concurrency: int = 1, ca_bundle: str | None = None) -> None:
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._ca_bundle = ca_bundle
        self._pools: dict[tuple[str, str, int], HTTPClient] = {}

    def _pool(self, url: httpx.URL) -> HTTPClient:
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        pool = self._pools.get(key)
        if pool is None:
            # TLS: the same trust as everywhere else (system store or SSL_CERT_FILE/DIR, plus ca_bundle), not
            # geventhttpclient's own certifi-only context. A proxy from the environment: CONNECT tunnels.
            kw: dict[str, Any] = ({"ssl": True, "ssl_context_factory": gevent_ssl_factory(self._ca_bundle)}
                                  if url.scheme == "https" else {})
            proxy = proxy_for(str(url))
            if proxy is not None:
                kw.update(proxy_host=proxy[0], proxy_port=proxy[1])
            pool = HTTPClient(key[1], key[2], connection_timeout=self._timeout_s, network_timeout=self._timeout_s,
                              concurrency=self._concurrency, **kw)
            self._pools[key] = pool
        return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pool(request.url)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.raw
                   if k.lower() != b"host"}
        body = request.read()
        try:
            resp = pool.request(request.method, request.url.raw_path.decode("ascii"), body=body, headers=headers)
            try:
                content = resp.read()
            finally:
                resp.release()
        except (TimeoutError, gevent.Timeout, socket.timeout) as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except (ConnectionRefusedError, ssl.SSLError, socket.gaierror) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        except RuntimeError as exc:  # geventhttpclient: "Proxy CONNECT failed: ..."
            raise httpx.ProxyError(str(exc), request=request) from exc
        except (HTTPParseError, ConnectionError, OSError) as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(resp.status_code, headers=list(resp.items()), content=content,
                              request=request)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
