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

from newsletter.clock import now_iso
from newsletter.config import Settings
from newsletter.delivery.bounces.record import count_hard_bounce
from newsletter.delivery.pipeline import classify
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
        # Refusals maybe the relay's: pending till a message gets through or the streak ends.
        self.suspects: list[tuple[Job, smtp.PermanentFailure]] = []
        self.requeued: list[Job] = []  # their connection was refused: to hand out again
        self.busy_error: smtp.ConnectionFailed | None = None
        self._sent_rows: list[tuple[str, str, str, int]] = []  # written at the end of ``write``
        self._stamp = ""

    def write(self, ready: Iterable[Result]) -> None:
        """Record results in one transaction; the messages sent in one statement."""
        with writing(self.db):
            self._stamp = now_iso()
            for result in ready:
                self.record(result)
            sent, self._sent_rows = self._sent_rows, []
            self.report.count_sent(mark_sent(self.db, sent) if sent else 0)

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
            if not self.stop_reason:  # its worker's connection was refused: send it again
                self.requeued.append(job)
            return  # else never sent: it stays pending for the next send
        if result.crash is not None:
            self.crash = self.crash or result.crash
            self.stop_reason = "crashed"
        elif result.invalid:
            self.fail(job, "invalid address", result.invalid)
            self.errors_in_a_row = 0
        elif result.error is None:
            self._sent(job, result)
            self.errors_in_a_row = 0
            settle_suspects(self)  # the relay relays: the refusals were about those messages
        elif isinstance(result.error, smtp.ConnectionFailed):
            self._session(job, result.error)
        elif isinstance(result.error, smtp.PermanentFailure):
            self._permanent(job, result.error)
        else:
            self._temporary(job, result.error)

    def _session(self, job: Job, error: smtp.ConnectionFailed) -> None:
        self._count_attempt(job, error.reply, attempt=0)  # an outage uses up no retries
        if self.stop_reason:
            return  # stopping anyway (Ctrl-C cuts connections): the row stays pending
        if classify.is_capacity(error):
            self.requeued.append(job)
            self.busy_error = error
        else:
            self.fatal, self.stop_reason = self.fatal or error, "unreachable"

    def idle(self) -> bool:  # no retry and no job waiting for a connection
        return not self.retries and not self.requeued

    def _error(self) -> None:
        self.errors_in_a_row += 1
        if self.errors_in_a_row >= self.options.max_errors and not self.stop_reason:
            self.stop_reason = "paused"

    def _sent(self, job: Job, result: Result) -> None:
        self._sent_rows.append((result.reply, result.message_id, self._stamp, job.delivery_id))

    def fail(self, job: Job, reason: str, reply: str, *, attempt: int = 1) -> None:
        cursor = self.db.execute(
            "UPDATE deliveries SET status = 'failed', attempts = attempts + ?, last_reply = ?,"
            " reason = ?, updated = ? WHERE id = ? AND status = 'pending'",
            [attempt, reply, reason, now_iso(), job.delivery_id],
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
        if classify.is_hard_bounce(error):
            self.fail(job, "hard bounce", error.reply)
            assert job.subscriber_id is not None
            detail = {"edition": self.edition_id, "reply": error.reply}
            count_hard_bounce(
                self.db, self.settings, job.subscriber_id, "send", detail, job.topic_id
            )
            self._error()
            return
        if self.suspects and not classify.same_refusal(self.suspects[0][1], error):
            settle_suspects(self)  # different answers: each is about its own message
        job.attempts += 1
        self._count_attempt(job, error.reply)
        self.suspects.append((job, error))
        self._error()
        if len(self.suspects) >= classify.RELAY_STREAK and not self.stop_reason:
            self.suspects.clear()  # they stay pending: nothing was wrong with them
            self.fatal = classify.relay_refused(error)
            self.stop_reason = "unreachable"

    def _temporary(self, job: Job, error: smtp.SmtpError) -> None:
        job.attempts += 1
        if job.attempts >= self.options.max_retries:
            self.fail(job, f"gave up after {job.attempts} attempts", error.reply)
            self._error()  # only an exhausted retry counts toward --max-errors
            return
        self._count_attempt(job, error.reply)
        # Exponential back-off; the random half keeps throttled connections out of step.
        delay = self.options.retry_base * (2 ** (job.attempts - 1))
        due = time.monotonic() + delay * (0.5 + random.random() / 2)
        heapq.heappush(self.retries, (due, job))


def mark_sent(db: Database, rows: list[tuple[str, str, str, int]]) -> int:
    """Turn rows (reply, Message-ID, time, id) ``sent``; how many were still pending (a row
    someone else closed meanwhile, an erasure, is neither changed nor counted)."""
    cursor = db.conn.executemany(
        "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, last_reply = ?,"
        " message_id = ?, reason = NULL, updated = ? WHERE id = ? AND status = 'pending'",
        rows,
    )
    return cursor.rowcount


def settle_suspects(run: Recorder, *, keep_young: bool = False) -> None:
    """Fail held-back refusals as ``rejected`` (``keep_young``: not those with retries left,
    when nothing got through this run and the relay may yet be the cause)."""
    for job, error in run.suspects:
        if keep_young and job.attempts < run.options.max_retries:
            continue
        run.fail(job, "rejected", error.reply, attempt=0)
    run.suspects.clear()
