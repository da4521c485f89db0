"""How the load side reaches a target: TLS trust (a private CA), forward proxies from the environment, and
transport failures named by their cause (proxy, DNS, TLS verification, refused, reset).

Honoured everywhere a request is made (preflight, tokens, launches, status polls, analytics):
``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (either case) and ``SSL_CERT_FILE``/``SSL_CERT_DIR``, plus a
scenario's ``ca_bundle``.
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ssl_context", "gevent_ssl_factory", "proxy_for", "ca_source", "describe"]


@functools.cache
def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """One verifying context per CA choice (building one costs ~25 ms of CPU: see the load-generator
    baseline). The system store, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, plus ``ca_bundle``."""
    ctx = ssl.create_default_context()
    if ca_bundle:
        ctx.load_verify_locations(cafile=ca_bundle)
    return ctx


def gevent_ssl_factory(ca_bundle: str | None) -> Callable[..., Any]:
    """The same trust for geventhttpclient (which would otherwise use certifi's bundle only)."""
    def factory(**_ignored: Any) -> Any:
        import gevent.ssl

        ctx = gevent.ssl.create_default_context()
        if ca_bundle:
            ctx.load_verify_locations(cafile=ca_bundle)
        return ctx
    return factory


def proxy_for(url: str) -> tuple[str, int] | None:
    """The forward proxy the environment sets for ``url`` (None: direct, or excluded by NO_PROXY)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    bypass: Callable[[str], bool] = getattr(urllib.request, "proxy_bypass_environment")  # NO_PROXY (not in typeshed)
    if bypass(host):
        return None
    proxy = urllib.request.getproxies_environment().get(parts.scheme)
    if not proxy:
        return None
    p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return (p.hostname or "", p.port or 80)


def ca_source(ca_bundle: str | None) -> str:
    if ca_bundle:
        return f"ca_bundle {ca_bundle}"
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        if os.environ.get(var):
            return f"{var}={os.environ[var]}"
    return "the system's CA store (set SSL_CERT_FILE or the scenario's ca_bundle for a private CA)"


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def describe(exc: BaseException, *, url: str, ca_bundle: str | None = None) -> str:
    """One stable line naming why a request got no answer (Locust groups failures by text)."""
    host = urlsplit(url).hostname or url
    proxy = proxy_for(url)
    text = " ".join(str(e) for e in _chain(exc)).lower()
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
            return f"TLS verification failed for {host} (CA: {ca_source(ca_bundle)})"
        if isinstance(e, ssl.SSLError):
            return f"TLS handshake with {host} failed ({e.reason or type(e).__name__})"
        if isinstance(e, socket.gaierror) or "name or service not known" in text or "name resolution" in text:
            return f"DNS: cannot resolve {host}" + (f" (the proxy {proxy[0]}:{proxy[1]} may)" if proxy else "")
    if proxy and ("proxy" in text or "connect failed" in text or "tunnel" in text):
        return f"the proxy {proxy[0]}:{proxy[1]} refused the tunnel to {host}"
    for e in _chain(exc):
        if isinstance(e, ConnectionRefusedError) or "connection refused" in text:
            where = f"the proxy {proxy[0]}:{proxy[1]}" if proxy else host
            return f"connection refused by {where}"
        if isinstance(e, ConnectionResetError) or "reset" in text:
            return f"connection reset by {host}"
        if isinstance(e, (TimeoutError, socket.timeout)) or "timed out" in text:
            return f"no answer from {host} in time"
    return f"{type(exc).__name__} talking to {host}"
