"""The access log of `newsletter serve`: one line per request, with nothing personal in it.

A line names the route, not the path: ``/u/<token>`` instead of the signed token itself, so
the log cannot be used to unsubscribe or read anyone's preferences. Query strings are dropped
(a mistyped link may carry an address), and so are client IP addresses and user agents. A
path that matches no route is logged as ``(no route)``: it may be a mangled token.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from flask import Flask, Response, g, request


class AccessLog:
    """Writes lines to ``stream`` from any waitress thread, one whole line at a time."""

    def __init__(self, stream: TextIO, tz: ZoneInfo, prefix: str = "") -> None:
        self.stream = stream
        self.tz = tz
        self.prefix = prefix  # the base URL's path, which waitress strips
        self.lock = threading.Lock()

    def line(self, method: str, route: str, status: int, size: int | None, ms: float) -> str:
        stamp = datetime.now(self.tz).isoformat(timespec="seconds")
        shown_size = "-" if size is None else str(size)
        return f"{stamp} {method} {route} {status} {shown_size} {ms:.0f}ms\n"

    def write(self, text: str) -> None:
        with self.lock:
            self.stream.write(text)
            self.stream.flush()


def route_of(prefix: str) -> str:
    """The request's route pattern (``/p/<token>/erase``), never the concrete path."""
    rule = request.url_rule
    if rule is None:
        return "(no route)"
    return prefix + rule.rule


def install(app: Flask, log: AccessLog) -> None:
    """Log every request the app answers, errors included."""

    @app.before_request
    def start_clock() -> None:
        g.access_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        started = g.get("access_started")
        elapsed = (time.perf_counter() - started) * 1000 if started else 0.0
        method = request.method if request.method.isalpha() else "-"
        log.write(
            log.line(
                method[:10],
                route_of(log.prefix),
                response.status_code,
                response.calculate_content_length(),
                elapsed,
            )
        )
        return response
