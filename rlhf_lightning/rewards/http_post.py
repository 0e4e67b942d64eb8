"""One bounded HTTP(S) POST, for plugins that call a service. Standard library only (``http.client``).

Bounds, so that a slow or hostile server cannot stall or flood a training run:

- ``timeout``: the whole attempt (connect, send, the complete answer), not each socket operation;
  a watchdog shuts the socket down when it is spent.
- ``deadline``: the whole request, retries and waits included.
- ``max_bytes``: the answer's size; a larger one is refused without reading it all.
- Redirects are **not followed**: a 3xx answer is an error naming the new address, so headers
  (credentials) are never sent anywhere but the configured URL.
- 429 and 5xx answers, timeouts and connection failures are retried ``retries`` times, waiting
  the server's ``Retry-After`` when it sends one, else ``backoff · 2^attempt`` seconds; a wait that
  would pass the deadline ends the retries at once.

Proxies are taken from the environment (``https_proxy``, ``http_proxy``, ``no_proxy``) as
``urllib`` does; loopback hosts never go through a proxy.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Optional
from urllib.parse import SplitResult, unquote, urlsplit

from rlhf_lightning.redaction import redact_url

_CHUNK = 64 * 1024


class HTTPFailure(Exception):
    """A failed request. ``retry``: another attempt may succeed; ``wait``: the server's Retry-After (s)."""

    def __init__(self, message: str, *, retry: bool = False, wait: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.wait = wait


@dataclass(frozen=True)
class Limits:
    """Time, size and retry bounds of :func:`post` (see the module doc)."""

    timeout: float
    deadline: float
    retries: int
    backoff: float
    max_bytes: int


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def post(url: str, body: bytes, headers: dict[str, str], limits: Limits) -> bytes:
    """POST ``body`` to ``url`` and return the answer's body (2xx), retrying as the module doc says.

    Raises :class:`HTTPFailure`; after more than one attempt its message counts them and lists
    each cause.
    """
    end = time.monotonic() + limits.deadline
    causes: list[str] = []
    for attempt in range(1, limits.retries + 2):
        try:
            return _attempt(url, body, headers, min(limits.timeout, end - time.monotonic()), limits.max_bytes)
        except HTTPFailure as exc:
            causes.append(str(exc))
            if not exc.retry and attempt == 1:
                raise
            if not exc.retry or attempt > limits.retries:
                break
            wait = exc.wait if exc.wait is not None else limits.backoff * 2 ** (attempt - 1)
            if time.monotonic() + wait >= end:
                causes.append(f"gave up: waiting {wait:g} s more would pass the deadline of {limits.deadline:g} s")
                break
            time.sleep(wait)
    raise HTTPFailure(f"failed after {attempt} attempt(s): " + "; ".join(causes))


def _attempt(url: str, body: bytes, headers: dict[str, str], seconds: float, max_bytes: int) -> bytes:
    """One POST that ends within ``seconds``: a watchdog shuts the socket down when they are spent."""
    if seconds <= 0:
        raise HTTPFailure("had no time left before the deadline")
    conn, target, headers = _connection(urlsplit(url), headers, seconds)
    watchdog = _Watchdog(conn, seconds)
    response = None
    try:
        conn.connect()  # bounded by the socket timeout: the watchdog has no socket to stop before
        watchdog.hold()
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        data = _answer(response, max_bytes)
        if watchdog.expired.is_set():  # the read was cut short: what came is not the answer
            raise TimeoutError
        return data
    except ssl.SSLCertVerificationError as exc:  # permanent: retrying will not change the certificate
        raise HTTPFailure(f"has a certificate that failed verification ({exc.verify_message})") from exc
    except (OSError, http.client.HTTPException) as exc:
        if watchdog.expired.is_set() or isinstance(exc, TimeoutError):
            raise HTTPFailure(f"gave no complete answer within {seconds:.3g} s", retry=True) from exc
        raise HTTPFailure(f"connection failed ({type(exc).__name__}: {exc})", retry=True) from exc
    finally:
        watchdog.cancel()
        if response is not None:
            response.close()
        conn.close()


class _Watchdog:
    """Shuts a connection's socket down after ``seconds``, which wakes a blocked read or write."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self.conn, self.sock = conn, None
        self.expired = threading.Event()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def hold(self) -> None:
        """Keep the socket: ``http.client`` forgets it when the answer will close the connection."""
        self.sock = self.conn.sock
        if self.expired.is_set():
            raise TimeoutError

    def cancel(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        self.expired.set()
        sock = self.sock or self.conn.sock
        if sock is not None:
            try:  # the plain socket's shutdown (also under TLS): wakes the reading thread
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


def _answer(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    status = response.status
    if 200 <= status < 300:
        return _read_capped(response, max_bytes)
    detail = response.read(300).decode("utf-8", "replace").strip()
    if 300 <= status < 400:
        location = redact_url(response.getheader("Location") or "(no Location header)")
        raise HTTPFailure(f"answered HTTP {status} redirect to {location}; redirects are not followed, "
                          "so headers never reach another address: set url to the final address")
    retry = status == 429 or status >= 500
    wait = _retry_after(response.getheader("Retry-After")) if retry else None
    raise HTTPFailure(f"answered HTTP {status}: {detail}", retry=retry, wait=wait)


def _read_capped(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPFailure(f"sent an answer of {int(declared)} bytes, over max_response_bytes={max_bytes}")
    chunks, size = [], 0
    while chunk := response.read(min(_CHUNK, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise HTTPFailure(f"sent an answer over max_response_bytes={max_bytes}")
    if response.length:  # fewer bytes than Content-Length: the connection was cut
        raise http.client.IncompleteRead(b"".join(chunks), response.length)
    return b"".join(chunks)


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delay in seconds or an HTTP date); ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _connection(parts: SplitResult, headers: dict[str, str],
                seconds: float) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """The connection (direct or through the environment's proxy), request target and headers."""
    https = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = _proxy_for(parts.scheme, host)
    if proxy is None:
        return _open(https, host, port, seconds), target, headers
    proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    auth = _proxy_auth(proxy_parts)
    conn = _open(https, proxy_parts.hostname or "", proxy_parts.port or 80, seconds)
    if https:  # CONNECT tunnel: the proxy sees neither the request nor its headers
        conn.set_tunnel(host, port, headers=auth)
        return conn, target, headers
    return conn, parts.geturl(), {**headers, **auth}


def _open(https: bool, host: str, port: int, seconds: float) -> http.client.HTTPConnection:
    if https:
        return http.client.HTTPSConnection(host, port, timeout=seconds, context=ssl.create_default_context())
    return http.client.HTTPConnection(host, port, timeout=seconds)


def _proxy_for(scheme: str, host: str) -> Optional[str]:
    if is_loopback(host) or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


def _proxy_auth(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
