"""When a send opens a new connection, after refusals retired the ones it had."""

from __future__ import annotations

import random
import time

from newsletter.delivery.pipeline.jobs import Options


class Staffing:
    """When to open a new connection. A refused one retires its lane (the concurrency
    drops by one); with none left, one is tried again after a back-off, unless nothing got
    through at all (then the server is down or turns us away: waiting would hide it)."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.reconnects = 0
        self.reconnect_at = 0.0
        self.sent_seen = 0

    def decide(self, live: int, sent_now: int) -> str:
        """``ok``, ``hire`` (one new lane now) or ``stop`` (pause the send)."""
        if sent_now > self.sent_seen:
            self.sent_seen, self.reconnects = sent_now, 0  # refusals were about capacity
        if live > 0:
            return "ok"
        if self.reconnects >= self.options.max_retries or sent_now == 0:
            return "stop"
        current = time.monotonic()
        if not self.reconnect_at:
            delay = self.options.retry_base * (2**self.reconnects)
            self.reconnect_at = current + delay * (0.5 + random.random() / 2)
        if current < self.reconnect_at:
            return "ok"
        self.reconnects += 1
        self.reconnect_at = 0.0
        return "hire"
