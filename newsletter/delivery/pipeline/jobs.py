"""The pipeline's small types: a job (one delivery row on its way), its result, the run's
options and report, and the rate limiter shared by all connections."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from newsletter.errors import NewsletterError
from newsletter.mail import smtp


@dataclass(order=True)
class Job:
    delivery_id: int
    subscriber_id: int | None = field(compare=False)
    topic_id: int = field(compare=False)
    email: str = field(compare=False)
    name: str = field(compare=False)
    attempts: int = field(compare=False)
    lang: str | None = field(default=None, compare=False)  # whose variant the person gets
    checked: float = field(default=0.0, compare=False)  # monotonic time of the consent check


@dataclass
class Result:
    job: Job
    reply: str = ""
    message_id: str = ""
    error: smtp.SmtpError | None = None
    invalid: str = ""  # the address could not be put in a header
    crash: BaseException | None = None  # a bug, not an SMTP answer: stop, keep it pending
    skipped: bool = False  # never sent: the send stopped first; the row stays pending


@dataclass
class SendReport:
    edition: int
    status: str
    total: int
    sent: int
    failed: int
    pending: int
    sent_now: int = 0
    failed_now: int = 0
    # done | paused | interrupted | unreachable | lock lost | crashed
    outcome: str = "done"
    message: str = ""

    @classmethod
    def from_counts(cls, edition: int, status: str, numbers: dict[str, int]) -> SendReport:
        return cls(
            edition=edition,
            status=status,
            total=sum(numbers.values()),
            sent=numbers["sent"],
            failed=numbers["failed"],
            pending=numbers["pending"],
        )

    def count_sent(self, count: int) -> None:
        self.sent, self.sent_now, self.pending = (
            self.sent + count,
            self.sent_now + count,
            self.pending - count,
        )

    def as_dict(self) -> dict:
        return {
            "edition": self.edition,
            "status": self.status,
            "total": self.total,
            "sent": self.sent,
            "failed": self.failed,
            "pending": self.pending,
        }


Progress = Callable[[SendReport], None]


@dataclass
class Options:
    rate: float
    concurrency: int
    batch_size: int
    max_errors: int
    max_retries: int
    retry_base: float

    def check(self) -> None:
        """Raise for an option no send can run with."""
        # ``nan <= 0`` is False, so finiteness needs its own test; an infinite rate is no limit.
        if not math.isfinite(self.rate) or self.rate <= 0:
            raise NewsletterError(f"--rate must be a positive number, not {self.rate}")
        if self.concurrency < 1 or self.batch_size < 1:
            raise NewsletterError("--concurrency and --batch-size must be positive")
        if self.max_errors < 1:
            raise NewsletterError("--max-errors must be at least 1")


class RateLimiter:
    """Token bucket for the whole send: providers limit the account, not the connection."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        # A burst of at most a tenth of a second's worth: a provider counting per second
        # never sees much more than ``rate``.
        self.capacity = max(1.0, min(rate / 10, 50.0))
        self.tokens = 1.0
        self.stamp = time.monotonic()

    def wait_time(self, count: int = 1) -> float:
        """Seconds until ``count`` messages may go (at most ``capacity``); 0 takes them."""
        current = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (current - self.stamp) * self.rate)
        self.stamp = current
        needed = min(float(count), self.capacity)
        if self.tokens >= needed:
            self.tokens -= needed
            return 0.0
        return (needed - self.tokens) / self.rate

    def slice_size(self) -> int:
        """Messages one lane may be handed at once: about 50 ms of the rate, so a slow
        ``--rate`` still hands out (and paces) one message at a time."""
        return max(1, min(int(self.rate * 0.05), 32, int(self.capacity)))
