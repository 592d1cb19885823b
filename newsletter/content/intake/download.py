"""Downloading a source over http(s) with a deadline for the whole answer and a size cap.

A socket timeout only bounds each read: a server that drips one byte every few seconds
never trips it and would hold an import for hours. A watchdog shuts the connection's socket
down when the whole download's deadline passes, whatever phase it is in (headers, body,
a redirect).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from newsletter import __version__
from newsletter.content.intake.text import one_line

READ_TIMEOUT = 30.0  # seconds for connecting and for each read, within the deadline
CHUNK = 64 * 1024


@dataclass
class _Watchdog:
    """The sockets of one download, shut down together when its deadline passes."""

    sockets: list[socket.socket] = field(default_factory=list)
    fired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.append(sock)
            if self.fired:
                _shut(sock)

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _watched(base: type[http.client.HTTPConnection], dog: _Watchdog) -> Any:
    class Watched(base):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            dog.add(self.sock)

    return Watched


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, dog: _Watchdog) -> None:
        super().__init__()
        self.dog = dog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPConnection, self.dog), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, dog: _Watchdog) -> None:
        super().__init__()
        self.dog = dog

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPSConnection, self.dog), req)


def fetch(url: str, deadline: float, max_bytes: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an http(s) URL; failures are ValueError with a short reason."""
    dog = _Watchdog()
    opener = urllib.request.build_opener(_HTTP(dog), _HTTPS(dog))
    request = urllib.request.Request(
        url,
        headers={
            "User-Agent": f"newsletter/{__version__} (feed intake)",
            "Accept": "application/rss+xml, application/atom+xml, application/feed+json,"
            " application/json;q=0.9, application/xml;q=0.9, */*;q=0.5",
        },
    )
    timer = threading.Timer(deadline, dog.fire)
    timer.daemon = True
    timer.start()
    started = time.monotonic()
    late = ValueError(
        f"download not finished within the {deadline:g} s deadline (intake.download_deadline)"
    )
    try:
        answer = _download(opener, request, min(READ_TIMEOUT, deadline), max_bytes)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        if dog.fired or time.monotonic() - started >= deadline:
            raise late from None
        raise ValueError(_reason(exc, min(READ_TIMEOUT, deadline))) from None
    finally:
        timer.cancel()
    # A socket shut down mid-headers can look like a short, complete answer.
    if dog.fired:
        raise late
    return answer


def _download(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    timeout: float,
    max_bytes: int,
) -> tuple[bytes, dict[str, str]]:
    with opener.open(request, timeout=timeout) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        announced = headers.get("content-length", "")
        if announced.isdigit() and int(announced) > max_bytes:
            raise _TooLarge(max_bytes)
        chunks, size = [], 0
        while chunk := response.read1(CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise _TooLarge(max_bytes)
        final_url = response.geturl()
    body = b"".join(chunks)
    # A server that hangs up early: a cut-off feed could still parse as a shorter one.
    if announced.isdigit() and size < int(announced) and not headers.get("content-encoding"):
        raise ValueError(f"cut off after {size} of {announced} bytes")
    headers.setdefault("content-location", final_url)
    return body, headers


class _TooLarge(ValueError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"larger than {max_bytes / (1024 * 1024):.3g} MB (intake.max_download_mb)")


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, _TooLarge):
        return str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError):
            return f"no answer within {timeout:g} seconds"
        return f"cannot fetch: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} seconds"
    if isinstance(exc, ValueError) and str(exc).startswith("cut off"):
        return f"cannot fetch: {exc}"
    return f"cannot fetch: {one_line(exc)}"
