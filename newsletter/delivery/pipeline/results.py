"""Recording results: each message's outcome written into the delivery log, the run's
counts, the retry schedule and the reason a send stops.

Only the dispatcher's thread writes; a row changes only while it is still ``pending``, so
a row someone else closed meanwhile (an erasure) is never overwritten or counted.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator

from sqlite_utils import Database

from newsletter.audience import subscribers
from newsletter.clock import now_iso
from newsletter.config import Settings
from newsletter.delivery.pipeline.classify import is_hard_bounce
from newsletter.delivery.pipeline.jobs import Job, Options, Result, SendReport
from newsletter.mail import smtp
from newsletter.store.db import immediate, is_busy


@contextlib.contextmanager
def writing(db: Database) -> Iterator[None]:
    """``immediate(db)``, waiting as long as another writer holds the database.

    The results being written are messages the server already accepted: giving up after
    the busy timeout (say, during a long import) would leave them pending, to be sent again.
    Only BEGIN can be busy; once it succeeds the write lock is held until COMMIT.
    """
    stack = contextlib.ExitStack()
    while True:
        try:
            stack.enter_context(immediate(db))
            break
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
    with stack:
        yield


class Recorder:
    """Writes results; keeps the report, the retry heap and why the send must stop."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        edition_id: int,
        options: Options,
        report: SendReport,
    ) -> None:
        self.db = db
        self.settings = settings
        self.edition_id = edition_id
        self.options = options
        self.report = report
        self.retries: list[tuple[float, Job]] = []  # (due time, job), a heap
        self.errors_in_a_row = 0
        self.stop_reason = ""  # interrupted | paused | unreachable | lock lost | crashed
        self.fatal: smtp.ConnectionFailed | None = None
        self.crash: BaseException | None = None

    def write(self, ready: Iterable[Result]) -> None:
        """Record results, one transaction for all of them."""
        with writing(self.db):
            for result in ready:
                self.record(result)

    def close_refused(self, refused: dict[int, str]) -> None:
        """Close rows whose person may no longer be mailed, with the reason."""
        stamp = now_iso()
        with writing(self.db):
            for delivery_id, reason in refused.items():
                cursor = self.db.execute(
                    "UPDATE deliveries SET status = 'failed', reason = ?, updated = ?"
                    " WHERE id = ? AND status = 'pending'",
                    [reason, stamp, delivery_id],
                )
                self._count_failed(cursor.rowcount)

    def record(self, result: Result) -> None:
        job = result.job
        if result.skipped:
            return  # never sent: it stays pending for the next send
        if result.crash is not None:
            self.crash = self.crash or result.crash
            self.stop_reason = "crashed"
        elif result.invalid:
            self._fail(job, "invalid address", result.invalid)
            self.errors_in_a_row = 0
        elif result.error is None:
            self._sent(job, result)
            self.errors_in_a_row = 0
        elif isinstance(result.error, smtp.ConnectionFailed):
            self.fatal = self.fatal or result.error
            self.stop_reason = "unreachable"
            # Not an attempt at this recipient: an outage must not use up their retries.
            self._count_attempt(job, result.error.reply, attempt=0)
        elif isinstance(result.error, smtp.PermanentFailure):
            self._permanent(job, result.error)
            self._error()
        else:
            self._temporary(job, result.error)
            self._error()

    def _error(self) -> None:
        self.errors_in_a_row += 1
        if self.errors_in_a_row >= self.options.max_errors and not self.stop_reason:
            self.stop_reason = "paused"

    def _sent(self, job: Job, result: Result) -> None:
        cursor = self.db.execute(
            "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, last_reply = ?,"
            " message_id = ?, reason = NULL, updated = ? WHERE id = ? AND status = 'pending'",
            [result.reply, result.message_id, now_iso(), job.delivery_id],
        )
        if cursor.rowcount:
            self.report.sent += 1
            self.report.sent_now += 1
            self.report.pending -= 1

    def _fail(self, job: Job, reason: str, reply: str) -> None:
        cursor = self.db.execute(
            "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_reply = ?,"
            " reason = ?, updated = ? WHERE id = ? AND status = 'pending'",
            [reply, reason, now_iso(), job.delivery_id],
        )
        self._count_failed(cursor.rowcount)

    def _count_failed(self, closed: int) -> None:
        # A row someone else closed meanwhile (an erasure) is not this run's failure.
        if closed:
            self.report.failed += 1
            self.report.failed_now += 1
            self.report.pending -= 1

    def _count_attempt(self, job: Job, reply: str, *, attempt: int = 1) -> None:
        self.db.execute(
            "UPDATE deliveries SET attempts = attempts + ?, last_reply = ?, updated = ?"
            " WHERE id = ? AND status = 'pending'",
            [attempt, reply, now_iso(), job.delivery_id],
        )

    def _permanent(self, job: Job, error: smtp.PermanentFailure) -> None:
        if not is_hard_bounce(error):
            self._fail(job, "rejected", error.reply)
            return
        self._fail(job, "hard bounce", error.reply)
        _count_hard_bounce(self.db, self.settings, self.edition_id, job, error.reply)

    def _temporary(self, job: Job, error: smtp.SmtpError) -> None:
        job.attempts += 1
        if job.attempts >= self.options.max_retries:
            self._fail(job, f"gave up after {job.attempts} attempts", error.reply)
            return
        self._count_attempt(job, error.reply)
        # Exponential back-off; the random half keeps throttled connections out of step.
        delay = self.options.retry_base * (2 ** (job.attempts - 1))
        due = time.monotonic() + delay * (0.5 + random.random() / 2)
        heapq.heappush(self.retries, (due, job))


def _count_hard_bounce(
    db: Database, settings: Settings, edition_id: int, job: Job, reply: str
) -> None:
    """One more hard bounce for the person; at ``hard_bounce_limit`` they are bounced."""
    counted = db.execute(
        "UPDATE subscribers SET hard_bounces = hard_bounces + 1 WHERE id = ?",
        [job.subscriber_id],
    )
    if not counted.rowcount:
        # Erased while the message was out: an event for a deleted person would break
        # the foreign key and roll back every result written with it.
        return
    subscribers.record_event(
        db,
        job.subscriber_id,
        "hard_bounce",
        "send",
        job.topic_id,
        {"edition": edition_id, "reply": reply},
    )
    row = db.execute(
        "SELECT hard_bounces, status FROM subscribers WHERE id = ?", [job.subscriber_id]
    ).fetchone()
    if row and row[1] == "active" and row[0] >= settings.hard_bounce_limit:
        subscribers.set_status(db, job.subscriber_id, "bounced", "bounce")
