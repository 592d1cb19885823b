"""The dispatcher: claims pending rows in batches, re-checks consent, paces the send and
hands single messages to the workers, then writes their results.

One dispatcher (the calling thread) owns all database writes and hands messages to
``concurrency`` worker threads, each with its own SMTP connection. It never lets more than
``concurrency`` messages be out without their result written, so a hard kill can make at
most that many people receive a second copy on resume.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import signal
import threading
import time
from collections.abc import Iterator

from sqlite_utils import Database

from newsletter.config import Settings
from newsletter.delivery.pipeline import consent, report, workers
from newsletter.delivery.pipeline.jobs import (
    Job,
    Options,
    Progress,
    RateLimiter,
    Result,
    SendReport,
)
from newsletter.delivery.pipeline.lock import Heartbeat
from newsletter.delivery.pipeline.planning import Edition, counts, edition_messages
from newsletter.delivery.pipeline.results import Recorder
from newsletter.store.db import token_key


class Dispatcher:
    """Claims rows, checks consent, paces, hands out jobs; the ``Recorder`` writes results."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        edition: Edition,
        options: Options,
        owner: str,
        progress: Progress | None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.edition = edition
        self.options = options
        self.progress = progress
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.results: queue.Queue[Result] = queue.Queue()
        self.limiter = RateLimiter(options.rate)
        self.heartbeat = Heartbeat(db, edition.id, owner)
        start = SendReport.from_counts(edition.id, "sending", counts(db, edition.id))
        self.recorder = Recorder(db, settings, edition.id, options, start)
        self.buffer: list[Job] = []
        self.after_id = 0
        self.exhausted = False  # no more pending rows to claim
        self.in_flight = 0
        self.interrupted = threading.Event()

    # claiming ---------------------------------------------------------------------------

    def _claim(self) -> None:
        """Load the next batch of pending rows and close those that may no longer be mailed."""
        batch = pending_jobs(self.db, self.edition.id, self.after_id, self.options.batch_size)
        if not batch:
            self.exhausted = True
            return
        self.after_id = batch[-1].delivery_id
        refused = consent.refusal_reasons(self.db, batch)
        if refused:
            self.recorder.close_refused(refused)
        self.buffer = [job for job in reversed(batch) if job.delivery_id not in refused]

    def _next_job(self) -> tuple[Job | None, float]:
        """The next job to send, or (None, seconds worth waiting) when none is ready."""
        current = time.monotonic()
        retries = self.recorder.retries
        if retries and retries[0][0] <= current:
            return heapq.heappop(retries)[1], 0.0
        while not self.buffer and not self.exhausted:  # a batch may close entirely
            self._claim()
        if self.buffer:
            return self.buffer.pop(), 0.0
        if retries:
            return None, retries[0][0] - current
        return None, 0.5

    def _still_mailable(self, job: Job) -> bool:
        """Last check just before the message leaves: consent may change mid-batch."""
        if time.monotonic() - job.checked < consent.CONSENT_FRESH:
            return True
        refused = consent.refusal_reasons(self.db, [job])
        if refused:
            self.recorder.close_refused(refused)
            return False
        return True

    # the loop ---------------------------------------------------------------------------

    def run(self) -> SendReport:
        template = edition_messages(self.db, self.settings, self.edition)
        key = token_key(self.db, self.settings.secret)
        crew = workers.start(self.options.concurrency, self.settings, template, key,
                             self.jobs, self.results)  # fmt: skip
        try:
            with interrupt_sets(self.interrupted):
                self._loop()
                self._drain()
        finally:
            workers.stop(crew, self.jobs, timeout=self.settings.smtp_timeout + 5)
        return report.finish(self.db, self.edition.id, self.recorder)

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
                if self.in_flight == 0 and not self.recorder.retries and self.exhausted:
                    return
                self._collect(block=True, timeout=min(max(wait, 0.01), 0.5))
                continue
            if not self._wait_for_rate():
                return  # the job was not handed out: it stays pending in the database
            if self._still_mailable(job):
                self.in_flight += 1
                self.jobs.put(job)

    def _wait_for_rate(self) -> bool:
        """Wait until the rate limit lets a message go; False when the send must stop."""
        pause = self.limiter.wait_time()
        while pause > 0 and not self._should_stop():
            self._collect(block=True, timeout=min(pause, 0.5))
            self._beat()  # a slow --rate waits longer than the lock stays fresh
            pause = self.limiter.wait_time()
        return not self._should_stop()

    def _should_stop(self) -> bool:
        if self.interrupted.is_set() and not self.recorder.stop_reason:
            self.recorder.stop_reason = "interrupted"
        return bool(self.recorder.stop_reason)

    def _beat(self) -> None:
        if not self.heartbeat.beat():
            self.recorder.stop_reason = "lock lost"

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
        self.recorder.write(ready)
        if self.progress is not None:
            self.progress(self.recorder.report)


def pending_jobs(db: Database, edition_id: int, after_id: int, limit: int) -> list[Job]:
    """The next ``limit`` pending rows after ``after_id``, by id, stamped as checked now
    (the caller checks their consent before any of them leaves)."""
    rows = db.execute(
        "SELECT d.id, d.subscriber_id, d.topic_id, s.email, s.name, d.attempts,"
        " COALESCE(d.lang, s.lang)"
        " FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id"
        " WHERE d.edition_id = ? AND d.status = 'pending' AND d.id > ?"
        " ORDER BY d.id LIMIT ?",
        [edition_id, after_id, limit],
    ).fetchall()
    checked = time.monotonic()
    return [Job(*row, checked=checked) for row in rows]


@contextlib.contextmanager
def interrupt_sets(event: threading.Event) -> Iterator[None]:
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
