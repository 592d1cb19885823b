"""Sending an edition: the delivery log, the lock, and the worker pipeline.

Every recipient is a row in ``deliveries`` fixed when the first send starts, so a crash, a
Ctrl-C or a pause never loses anyone: a later ``send`` continues with the rows still
``pending``. One dispatcher (the calling thread) owns all database writes and hands single
messages to ``concurrency`` worker threads, each with its own SMTP connection. The dispatcher
never lets more than ``concurrency`` messages be out without their result written, so a hard
kill can make at most that many people receive a second copy on resume.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import queue
import random
import re
import signal
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlite_utils import Database

from newsletter import links
from newsletter.audience import subscribers
from newsletter.clock import from_iso, now, now_iso
from newsletter.config import Settings
from newsletter.errors import NewsletterError, NotFound
from newsletter.mail import message, placeholders, smtp
from newsletter.store.db import immediate, is_busy, token_key

LOCK_STALE_AFTER = 60.0  # seconds without a heartbeat before another send may take over
HEARTBEAT_EVERY = 10.0
FIX_CHUNK = 5000  # recipients copied into the delivery log per statement batch
# Consent is checked for a whole batch when it is claimed, and again for each message that
# leaves later than this after the last check (slow sends), so an unsubscribe counts at once.
CONSENT_FRESH = 0.25


class EditionLocked(NewsletterError):
    """Another process is sending this edition right now."""


@dataclass(frozen=True)
class Edition:
    id: int
    subject: str
    html: str
    text: str
    status: str
    topic_ids: tuple[int, ...]
    topic_slugs: tuple[str, ...]
    topic_names: tuple[str, ...]
    hole_marker: str | None = None  # None: built before holes were sealed (legacy form)


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


# --- editions ------------------------------------------------------------------------------


def load_edition(db: Database, edition_id: int) -> Edition:
    rows = list(db.query("SELECT * FROM editions WHERE id = ?", [edition_id]))
    if not rows:
        raise NotFound(f"no edition {edition_id}: `newsletter build` creates editions")
    row = rows[0]
    topics = db.execute(
        "SELECT t.id, t.slug, t.name FROM edition_topics et JOIN topics t ON t.id = et.topic_id"
        " WHERE et.edition_id = ? ORDER BY t.id",
        [edition_id],
    ).fetchall()
    if not topics:
        raise NewsletterError(f"edition {edition_id} has no topic, so it has no recipients")
    return Edition(
        id=row["id"],
        subject=row["subject"],
        html=row["html"],
        text=row["text"],
        status=row["status"],
        topic_ids=tuple(t[0] for t in topics),
        topic_slugs=tuple(t[1] for t in topics),
        topic_names=tuple(t[2] for t in topics),
        hole_marker=row.get("hole_marker"),
    )


def edition_message(
    settings: Settings, edition: Edition, *, test: bool = False
) -> message.EditionMessage:
    """The edition encoded once; ``test`` marks the subject of a test copy."""
    subject = f"[TEST] {edition.subject}" if test else edition.subject
    return message.EditionMessage(
        settings,
        subject=subject,
        html=edition.html,
        text=edition.text,
        list_id=message.list_id(settings, list(edition.topic_slugs)),
        holes=placeholders.Holes(edition.hole_marker),
    )


def counts(db: Database, edition_id: int) -> dict[str, int]:
    result = {"pending": 0, "sent": 0, "failed": 0}
    for state, number in db.execute(
        "SELECT status, COUNT(*) FROM deliveries WHERE edition_id = ? GROUP BY status",
        [edition_id],
    ):
        result[state] = number
    return result


def status(db: Database, edition_id: int) -> dict:
    """``{"edition", "status", "total", "sent", "failed", "pending"}`` for one edition."""
    row = db.execute("SELECT status FROM editions WHERE id = ?", [edition_id]).fetchone()
    if row is None:
        raise NotFound(f"no edition {edition_id}")
    return SendReport.from_counts(edition_id, row[0], counts(db, edition_id)).as_dict()


def failures(db: Database, edition_id: int) -> Iterator[dict]:
    """The edition's failed deliveries, by delivery id: who, why, and the server's last reply.

    An erased person's row has no address any more (and its reply was cleared with them).
    """
    status(db, edition_id)  # NotFound for an unknown edition
    rows = db.execute(
        "SELECT s.email, d.reason, d.last_reply, d.attempts, d.updated FROM deliveries d"
        " LEFT JOIN subscribers s ON s.id = d.subscriber_id"
        " WHERE d.edition_id = ? AND d.status = 'failed' ORDER BY d.id",
        [edition_id],
    )
    keys = ("email", "reason", "reply", "attempts", "time")
    return (dict(zip(keys, row, strict=True)) for row in rows)


# --- the delivery log ----------------------------------------------------------------------


def _new_recipients(db: Database, edition: Edition) -> Iterator[subscribers.Recipient]:
    """Current recipients of the edition's topics without a delivery row yet."""
    for chunk in _recipient_chunks(db, edition):
        have = {
            r[0]
            for r in db.execute(
                "SELECT subscriber_id FROM deliveries WHERE edition_id = ?"
                " AND subscriber_id BETWEEN ? AND ?",
                [edition.id, chunk[0].id, chunk[-1].id],
            )
        }
        yield from (person for person in chunk if person.id not in have)


def _recipient_chunks(db: Database, edition: Edition) -> Iterator[list[subscribers.Recipient]]:
    """The edition's recipients (``subscribers.recipients``, the one definition of who may
    be mailed) in chunks of ``FIX_CHUNK``, by id."""
    after = 0
    while chunk := list(
        subscribers.recipients(db, edition.topic_ids, after_id=after, limit=FIX_CHUNK)
    ):
        yield chunk
        after = chunk[-1].id


def _fix_recipients(db: Database, edition: Edition) -> int:
    """Copy the edition's recipients into the delivery log (inside the caller's transaction)."""
    stamp = now_iso()
    added = 0
    for chunk in _recipient_chunks(db, edition):
        cursor = db.conn.executemany(
            "INSERT OR IGNORE INTO deliveries"
            " (edition_id, subscriber_id, topic_id, status, created, updated)"
            " VALUES (?, ?, ?, 'pending', ?, ?)",
            [(edition.id, p.id, p.topic_id, stamp, stamp) for p in chunk],
        )
        added += cursor.rowcount
    return added


def plan(
    db: Database, edition_id: int, *, include_new: bool = False, first: int = 10
) -> tuple[int, list[subscribers.Recipient]]:
    """How many people a ``send`` would mail now, and the first of them (for --dry-run)."""
    edition = load_edition(db, edition_id)
    if edition.status == "draft":
        count = subscribers.count_recipients(db, edition.topic_ids)
        return count, list(subscribers.recipients(db, edition.topic_ids, limit=first))
    rows = db.execute(
        "SELECT s.id, s.email, s.name, s.lang, d.topic_id FROM deliveries d"
        " JOIN subscribers s ON s.id = d.subscriber_id"
        " WHERE d.edition_id = ? AND d.status = 'pending' ORDER BY d.id LIMIT ?",
        [edition_id, first],
    ).fetchall()
    people = [subscribers.Recipient(*row) for row in rows]
    count = counts(db, edition_id)["pending"]
    if include_new:
        fresh = list(_new_recipients(db, edition))
        count += len(fresh)
        people += fresh[: max(0, first - len(people))]
    return count, people


# --- the lock ------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_is_stale(row: tuple, host: str) -> bool:
    _owner, pid, lock_host, heartbeat = row
    if lock_host == host and pid and not _pid_alive(int(pid)):
        return True
    if not heartbeat:
        return True
    return now() - from_iso(heartbeat) > timedelta(seconds=LOCK_STALE_AFTER)


def acquire_lock(db: Database, edition_id: int, owner: str) -> None:
    """Take the edition's lock, or raise EditionLocked if a live send holds it."""
    host = socket.gethostname()
    with immediate(db):
        row = db.execute(
            "SELECT lock_owner, lock_pid, lock_host, lock_heartbeat FROM editions WHERE id = ?",
            [edition_id],
        ).fetchone()
        if row is None:
            raise NotFound(f"no edition {edition_id}")
        if row[0] and row[0] != owner and not _lock_is_stale(row, host):
            raise EditionLocked(
                f"edition {edition_id} is already being sent (pid {row[1]} on {row[2]},"
                f" last seen {row[3]}); wait for it to finish or stop it first"
            )
        db.execute(
            "UPDATE editions SET lock_owner = ?, lock_pid = ?, lock_host = ?, lock_heartbeat = ?"
            " WHERE id = ?",
            [owner, os.getpid(), host, now_iso(), edition_id],
        )


def heartbeat(db: Database, edition_id: int, owner: str) -> bool:
    """Refresh the lock; False when another send took it over (this one was frozen)."""
    with db.atomic():
        cursor = db.execute(
            "UPDATE editions SET lock_heartbeat = ? WHERE id = ? AND lock_owner = ?",
            [now_iso(), edition_id, owner],
        )
    return cursor.rowcount == 1


def release_lock(db: Database, edition_id: int, owner: str) -> None:
    with db.atomic():
        db.execute(
            "UPDATE editions SET lock_owner = NULL, lock_pid = NULL, lock_host = NULL,"
            " lock_heartbeat = NULL WHERE id = ? AND lock_owner = ?",
            [edition_id, owner],
        )


# --- consent -------------------------------------------------------------------------------


def _refusal_reasons(db: Database, rows: Sequence[Job]) -> dict[int, str]:
    """For rows that may no longer be mailed: delivery id -> why (checked via ``mailable``)."""
    pairs = [(r.subscriber_id, r.topic_id) for r in rows if r.subscriber_id is not None]
    allowed = subscribers.mailable(db, pairs)
    reasons: dict[int, str] = {}
    for row in rows:
        if row.subscriber_id is None:
            reasons[row.delivery_id] = "erased"
        elif (row.subscriber_id, row.topic_id) not in allowed:
            reasons[row.delivery_id] = _why_not(db, row.subscriber_id, row.topic_id)
    return reasons


def _why_not(db: Database, subscriber_id: int, topic_id: int) -> str:
    person = db.execute("SELECT status FROM subscribers WHERE id = ?", [subscriber_id]).fetchone()
    if person is None:
        return "erased"
    if person[0] != "active":
        return str(person[0])  # bounced | blocklisted
    return "unsubscribed"


# --- the pipeline --------------------------------------------------------------------------


@dataclass(order=True)
class Job:
    delivery_id: int
    subscriber_id: int | None = field(compare=False)
    topic_id: int = field(compare=False)
    email: str = field(compare=False)
    name: str = field(compare=False)
    attempts: int = field(compare=False)
    checked: float = field(default=0.0, compare=False)  # monotonic time of the consent check


@dataclass
class Result:
    job: Job
    reply: str = ""
    message_id: str = ""
    error: smtp.SmtpError | None = None
    invalid: str = ""  # the address could not be put in a header
    crash: BaseException | None = None  # a bug, not an SMTP answer: stop, keep it pending


class RateLimiter:
    """Token bucket for the whole send: providers limit the account, not the connection."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        # A burst of at most a tenth of a second's worth: a provider counting per second
        # never sees much more than ``rate``.
        self.capacity = max(1.0, min(rate / 10, 50.0))
        self.tokens = 1.0
        self.stamp = time.monotonic()

    def wait_time(self) -> float:
        """Seconds until a message may go; 0 takes a token."""
        current = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (current - self.stamp) * self.rate)
        self.stamp = current
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


# RFC 3463 (and 7505's 5.1.10) codes that say the recipient's address itself does not work.
# 5.1.7/5.1.8 are about the sender, and 5.7.x is policy (DMARC, a blocklisted sending IP):
# counting those as bounces would mark good subscribers bounced because of our own setup.
_ENHANCED_CODE = re.compile(r"\b5\.(\d{1,3})\.(\d{1,3})\b")
_BAD_RECIPIENT = {"1.0", "1.1", "1.2", "1.3", "1.4", "1.6", "1.10", "2.1"}


def _is_hard_bounce(error: smtp.PermanentFailure) -> bool:
    """A refusal of the recipient itself, not of this message or of the sender.

    The enhanced status code decides when there is one, whatever the stage: servers refuse
    an unknown mailbox after DATA too, and refuse a blocklisted sender at RCPT TO too.
    """
    found = _ENHANCED_CODE.search(error.reply)
    if found:
        return f"{found.group(1)}.{found.group(2)}" in _BAD_RECIPIENT
    return error.hard_bounce or error.code in (550, 551, 553)


def _render_for(
    template: message.EditionMessage,
    settings: Settings,
    key: bytes,
    email: str,
    name: str,
    subscriber_id: int,
    topic_id: int,
) -> tuple[bytes, str]:
    """The edition addressed to one person, with their signed unsubscribe and preferences
    links: (bytes for SMTP, Message-ID)."""
    return template.render(
        to_email=email,
        to_name=name,
        unsubscribe_url=links.unsubscribe_url(settings, key, subscriber_id, topic_id),
        preferences_url=links.preferences_url(settings, key, subscriber_id),
        unsubscribe_mailto=links.unsubscribe_mailto(settings, key, subscriber_id, topic_id),
    )


class _Worker(threading.Thread):
    def __init__(
        self,
        settings: Settings,
        template: message.EditionMessage,
        key: bytes,
        jobs: queue.Queue[Job | None],
        results: queue.Queue[Result],
    ) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.template = template
        self.key = key
        self.jobs = jobs
        self.results = results
        self.sender = settings.sender_address

    def run(self) -> None:
        connection = smtp.Connection(self.settings)
        try:
            while (job := self.jobs.get()) is not None:
                try:
                    result = self._deliver(connection, job)
                except Exception as exc:  # the dispatcher must always get an answer
                    result = Result(job, crash=exc)
                self.results.put(result)
        finally:
            connection.close()

    def _deliver(self, connection: smtp.Connection, job: Job) -> Result:
        assert job.subscriber_id is not None
        try:
            data, message_id = _render_for(
                self.template, self.settings, self.key, job.email, job.name,
                job.subscriber_id, job.topic_id,
            )  # fmt: skip
        except message.AddressError as exc:
            return Result(job, invalid=str(exc))
        try:
            reply = connection.send(self.sender, job.email, data)
        except smtp.SmtpError as exc:
            return Result(job, error=exc)
        return Result(job, reply=reply, message_id=message_id)


@dataclass
class _Options:
    rate: float
    concurrency: int
    batch_size: int
    max_errors: int
    max_retries: int
    retry_base: float


class _Sender:
    """The dispatcher: claims rows, checks consent, paces, hands out jobs, writes results."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        edition: Edition,
        options: _Options,
        owner: str,
        progress: Progress | None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.edition = edition
        self.options = options
        self.owner = owner
        self.progress = progress
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.results: queue.Queue[Result] = queue.Queue()
        self.limiter = RateLimiter(options.rate)
        self.buffer: list[Job] = []
        self.retries: list[tuple[float, Job]] = []  # (due time, job), a heap
        self.after_id = 0
        self.exhausted = False  # no more pending rows to claim
        self.in_flight = 0
        self.errors_in_a_row = 0
        self.stop_reason = ""
        self.fatal: smtp.ConnectionFailed | None = None
        self.crash: BaseException | None = None
        self.interrupted = threading.Event()
        self.last_beat = time.monotonic()
        self.report = SendReport.from_counts(edition.id, "sending", counts(db, edition.id))

    # claiming ---------------------------------------------------------------------------

    def _claim(self) -> None:
        """Load the next batch of pending rows and close those that may no longer be mailed."""
        rows = self.db.execute(
            "SELECT d.id, d.subscriber_id, d.topic_id, s.email, s.name, d.attempts"
            " FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.edition_id = ? AND d.status = 'pending' AND d.id > ?"
            " ORDER BY d.id LIMIT ?",
            [self.edition.id, self.after_id, self.options.batch_size],
        ).fetchall()
        if not rows:
            self.exhausted = True
            return
        self.after_id = rows[-1][0]
        checked = time.monotonic()
        batch = [Job(*row, checked=checked) for row in rows]
        refused = _refusal_reasons(self.db, batch)
        if refused:
            self._close_refused(refused)
        self.buffer = [job for job in reversed(batch) if job.delivery_id not in refused]

    def _close_refused(self, refused: dict[int, str]) -> None:
        stamp = now_iso()
        with _writing(self.db):
            for delivery_id, reason in refused.items():
                cursor = self.db.execute(
                    "UPDATE deliveries SET status = 'failed', reason = ?, updated = ?"
                    " WHERE id = ? AND status = 'pending'",
                    [reason, stamp, delivery_id],
                )
                self._count_failed(cursor.rowcount)

    def _next_job(self) -> tuple[Job | None, float]:
        """The next job to send, or (None, seconds worth waiting) when none is ready."""
        current = time.monotonic()
        if self.retries and self.retries[0][0] <= current:
            return heapq.heappop(self.retries)[1], 0.0
        while not self.buffer and not self.exhausted:  # a batch may close entirely
            self._claim()
        if self.buffer:
            return self.buffer.pop(), 0.0
        if self.retries:
            return None, self.retries[0][0] - current
        return None, 0.5

    def _still_mailable(self, job: Job) -> bool:
        """Last check just before the message leaves: consent may change mid-batch."""
        if time.monotonic() - job.checked < CONSENT_FRESH:
            return True
        refused = _refusal_reasons(self.db, [job])
        if refused:
            self._close_refused(refused)
            return False
        return True

    # the loop ---------------------------------------------------------------------------

    def run(self) -> SendReport:
        template = edition_message(self.settings, self.edition)
        key = token_key(self.db, self.settings.secret)
        workers = [
            _Worker(self.settings, template, key, self.jobs, self.results)
            for _ in range(self.options.concurrency)
        ]
        for worker in workers:
            worker.start()
        try:
            with _interrupt_sets(self.interrupted):
                self._loop()
                self._drain()
        finally:
            for _ in workers:
                self.jobs.put(None)
            for worker in workers:
                worker.join(timeout=self.settings.smtp_timeout + 5)
        return self._finish()

    def _loop(self) -> None:
        while True:
            self._collect(block=False)
            if self._should_stop():
                return
            self._beat()
            if self.in_flight >= self.options.concurrency:
                self._collect(block=True, timeout=0.5)
                continue
            job, wait = self._next_job()
            if job is None:
                if self.in_flight == 0 and not self.retries and self.exhausted:
                    return
                self._collect(block=True, timeout=min(max(wait, 0.01), 0.5))
                continue
            pause = self.limiter.wait_time()
            while pause > 0 and not self._should_stop():
                self._collect(block=True, timeout=min(pause, 0.5))
                self._beat()  # a slow --rate waits longer than the lock stays fresh
                pause = self.limiter.wait_time()
            if self._should_stop():
                return  # the job was not handed out: it stays pending in the database
            if not self._still_mailable(job):
                continue
            self.in_flight += 1
            self.jobs.put(job)

    def _should_stop(self) -> bool:
        if self.interrupted.is_set() and not self.stop_reason:
            self.stop_reason = "interrupted"
        return bool(self.stop_reason)

    def _beat(self) -> None:
        if time.monotonic() - self.last_beat < HEARTBEAT_EVERY:
            return
        try:
            if not heartbeat(self.db, self.edition.id, self.owner):
                self.stop_reason = "lock lost"
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return  # another writer is busy: the lock stays fresh for a while yet
        self.last_beat = time.monotonic()

    def _drain(self) -> None:
        """Wait for the messages in flight and record them; nothing new is handed out."""
        # Each socket step of a message (connect, commands, DATA) is bounded by the SMTP
        # timeout; past a few of those a worker is stuck and its row stays pending.
        deadline = time.monotonic() + self.settings.smtp_timeout * 3 + 10
        while self.in_flight > 0 and time.monotonic() < deadline:
            self._collect(block=True, timeout=0.5)
            self._beat()

    def _collect(self, *, block: bool, timeout: float = 0.0) -> None:
        """Write every finished result, one transaction for all that are ready."""
        ready: list[Result] = []
        try:
            ready.append(self.results.get(block=block, timeout=timeout if block else None))
            while True:
                ready.append(self.results.get_nowait())
        except queue.Empty:
            pass
        if not ready:
            return
        self.in_flight -= len(ready)
        with _writing(self.db):
            for result in ready:
                self._record(result)
        if self.progress is not None:
            self.progress(self.report)

    # results ----------------------------------------------------------------------------

    def _record(self, result: Result) -> None:
        job = result.job
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
        if not _is_hard_bounce(error):
            self._fail(job, "rejected", error.reply)
            return
        self._fail(job, "hard bounce", error.reply)
        counted = self.db.execute(
            "UPDATE subscribers SET hard_bounces = hard_bounces + 1 WHERE id = ?",
            [job.subscriber_id],
        )
        if not counted.rowcount:
            # Erased while the message was out: an event for a deleted person would break
            # the foreign key and roll back every result written with it.
            return
        subscribers.record_event(
            self.db,
            job.subscriber_id,
            "hard_bounce",
            "send",
            job.topic_id,
            {"edition": self.edition.id, "reply": error.reply},
        )
        row = self.db.execute(
            "SELECT hard_bounces, status FROM subscribers WHERE id = ?", [job.subscriber_id]
        ).fetchone()
        if row and row[1] == "active" and row[0] >= self.settings.hard_bounce_limit:
            subscribers.set_status(self.db, job.subscriber_id, "bounced", "bounce")

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

    # the end ----------------------------------------------------------------------------

    def _finish(self) -> SendReport:
        report = self.report
        numbers = counts(self.db, self.edition.id)
        report.sent, report.failed, report.pending = (
            numbers["sent"],
            numbers["failed"],
            numbers["pending"],
        )
        report.total = sum(numbers.values())
        final = "sent" if report.pending == 0 else "paused"
        if self.stop_reason == "lock lost":
            # Another send owns the edition now: its status is not ours to change.
            report.status = self.db.execute(
                "SELECT status FROM editions WHERE id = ?", [self.edition.id]
            ).fetchone()[0]
            report.outcome = self.stop_reason
            report.message = self._explain()
            return report
        with _writing(self.db):
            self.db.execute(
                "UPDATE editions SET status = ?, updated = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN COALESCE(sent_at, ?) ELSE sent_at END"
                " WHERE id = ?",
                [final, now_iso(), final, now_iso(), self.edition.id],
            )
        report.status = final
        report.outcome = "done" if final == "sent" else (self.stop_reason or "paused")
        report.message = self._explain()
        return report

    def _explain(self) -> str:
        resume = f"run `newsletter send {self.edition.id}` again to continue"
        if self.report.pending == 0:
            return ""
        if self.stop_reason == "interrupted":
            return f"stopped; {self.report.pending} still pending: {resume}"
        if self.stop_reason == "paused":
            return (
                f"paused after {self.options.max_errors} errors in a row"
                f" (last: {self._last_error()}); {self.report.pending} still pending:"
                f" fix the cause, then {resume}"
            )
        if self.stop_reason == "lock lost":
            return (
                f"stopped: another send of edition {self.edition.id} took over the lock"
                f" while this one did not respond; {self.report.pending} still pending"
            )
        if self.stop_reason == "unreachable" and self.fatal is not None:
            return f"{self.fatal}; {self.report.pending} still pending: {resume}"
        return f"{self.report.pending} still pending: {resume}"

    def _last_error(self) -> str:
        row = self.db.execute(
            "SELECT last_reply FROM deliveries WHERE edition_id = ? AND last_reply IS NOT NULL"
            " AND (status != 'sent') ORDER BY updated DESC, id DESC LIMIT 1",
            [self.edition.id],
        ).fetchone()
        return row[0] if row else "unknown"


@contextlib.contextmanager
def _writing(db: Database) -> Iterator[None]:
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


@contextlib.contextmanager
def _interrupt_sets(event: threading.Event) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM) asks for a clean stop; a second one aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def no_recipients(edition: Edition) -> NewsletterError:
    """The error for an edition nobody may receive (the caller raises it)."""
    return NewsletterError(
        f"edition {edition.id} has no recipients: nobody in topic(s)"
        f" {', '.join(edition.topic_slugs)} is active and confirmed"
    )


def _start(db: Database, edition: Edition, include_new: bool) -> None:
    """Fix the recipients on the first send (or add newcomers); mark the edition sending.

    A first send that finds nobody raises inside the transaction, so the edition stays a
    draft: marking it ``sent`` would hide that nobody got it.
    """
    with immediate(db):
        current = db.execute("SELECT status FROM editions WHERE id = ?", [edition.id]).fetchone()
        if current[0] == "draft" or include_new:
            added = _fix_recipients(db, edition)
            if current[0] == "draft" and added == 0:
                raise no_recipients(edition)
        db.execute(
            "UPDATE editions SET status = 'sending', updated = ? WHERE id = ?",
            [now_iso(), edition.id],
        )


def _check_options(options: _Options) -> None:
    # ``nan <= 0`` is False, so finiteness needs its own test; an infinite rate is no limit.
    if not math.isfinite(options.rate) or options.rate <= 0:
        raise NewsletterError(f"--rate must be a positive number, not {options.rate}")
    if options.concurrency < 1 or options.batch_size < 1:
        raise NewsletterError("--concurrency and --batch-size must be positive")
    if options.max_errors < 1:
        raise NewsletterError("--max-errors must be at least 1")


def send(
    db: Database,
    settings: Settings,
    edition_id: int,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    batch_size: int | None = None,
    max_errors: int | None = None,
    include_new: bool = False,
    progress: Progress | None = None,
    retry_base: float | None = None,
) -> SendReport:
    """Send (or resume) an edition; returns the final counts and why it stopped.

    Raises EditionLocked when another send holds the edition, and the SMTP error when the
    server cannot be reached at all (everything stays pending).
    """
    options = _Options(
        rate=settings.rate if rate is None else rate,
        concurrency=settings.concurrency if concurrency is None else concurrency,
        batch_size=settings.batch_size if batch_size is None else batch_size,
        max_errors=settings.max_errors if max_errors is None else max_errors,
        max_retries=settings.max_retries,
        retry_base=settings.retry_base if retry_base is None else retry_base,
    )
    _check_options(options)
    # Before the lock and the delivery log: a refused base URL leaves nothing marked.
    links.check_base_url(settings)
    edition = load_edition(db, edition_id)
    if edition.hole_marker is None and edition.status == "draft":
        # Built before holes were sealed: its content could imitate them. One that already
        # started going out is finished as it began (its first recipients got the same).
        raise NewsletterError(
            f"edition {edition_id} was built by an earlier version whose personal links"
            f" article text could imitate: build it again (`newsletter editions delete"
            f" {edition_id}`, then `newsletter build`)"
        )
    owner = uuid.uuid4().hex
    acquire_lock(db, edition.id, owner)
    try:
        _start(db, edition, include_new)
        sender = _Sender(db, settings, edition, options, owner, progress)
        report = sender.run()
    finally:
        release_lock(db, edition.id, owner)
    if sender.crash is not None:
        raise sender.crash
    if report.outcome == "unreachable" and sender.fatal is not None:
        raise smtp.ConnectionFailed(report.message, code=sender.fatal.code)
    return report


def normalize_test_addresses(addresses: Sequence[str]) -> list[str]:
    """The ``--to`` addresses, normalised; raises on the first one that is not an address."""
    return [subscribers.normalize_email(address) for address in addresses]


def _refuse_unmailable(db: Database, addresses: Sequence[str]) -> None:
    """A test copy is still mail: never to an erased, bounced or blocklisted address."""
    for address in addresses:
        person = subscribers.find(db, address)
        why = "erased" if subscribers.is_suppressed(db, address) else ""
        if person is not None and person["status"] != "active":
            why = person["status"]
        if why:
            raise NewsletterError(f"{address} is {why} and is never mailed; no test copy was sent")


def send_test(
    db: Database, settings: Settings, edition_id: int, addresses: Sequence[str]
) -> list[tuple[str, str]]:
    """Send a ``[TEST]`` copy to each address; no delivery is recorded. (address, Message-ID)."""
    links.check_base_url(settings)
    edition = load_edition(db, edition_id)
    checked = normalize_test_addresses(addresses)
    _refuse_unmailable(db, checked)
    template = edition_message(settings, edition, test=True)
    key = token_key(db, settings.secret)
    topic_id = edition.topic_ids[0]
    sent: list[tuple[str, str]] = []
    # Subscriber id 0 exists for nobody: the links look real but change nothing.
    with smtp.Connection(settings) as connection:
        for address in checked:
            data, message_id = _render_for(template, settings, key, address, "", 0, topic_id)
            connection.send(settings.sender_address, address, data)
            sent.append((address, message_id))
    return sent
