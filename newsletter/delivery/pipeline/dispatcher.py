"""The dispatcher: hands slices of claimed rows to idle lanes, paces the send, and writes
the lanes' results, one transaction for all results that are ready.

One thread (the caller's) runs it all: the lanes' SMTP sessions on one event loop, and all
database writes. Each of the ``concurrency`` lanes has its own SMTP connection and lets the
final dot of its next message go only once the result of the one before is written, so at
most ``concurrency`` accepted messages are ever without their result in the database: a
hard kill can make at most that many people receive a second copy on resume.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

from sqlite_utils import Database

from newsletter.config import Settings
from newsletter.delivery.pipeline import report
from newsletter.delivery.pipeline.batches import Batches
from newsletter.delivery.pipeline.jobs import Options, Progress, RateLimiter, SendReport
from newsletter.delivery.pipeline.lanes import Lanes
from newsletter.delivery.pipeline.lock import Heartbeat
from newsletter.delivery.pipeline.planning import Edition, counts, edition_messages
from newsletter.delivery.pipeline.results import Recorder
from newsletter.delivery.pipeline.staffing import Staffing
from newsletter.store.db import checkpoints_spaced, token_key


class Dispatcher:
    """Hands out slices, paces, collects and writes results (through the ``Recorder``)."""

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
        self.limiter = RateLimiter(options.rate)
        self.heartbeat = Heartbeat(db, edition.id, owner)
        start = SendReport.from_counts(edition.id, "sending", counts(db, edition.id))
        self.recorder = Recorder(db, settings, edition.id, options, start)
        self.batches = Batches(db, edition.id, options, self.recorder)
        self.in_flight = 0  # jobs handed out whose result has not come
        self.interrupted = threading.Event()
        self.staffing = Staffing(options)
        template = edition_messages(db, settings, edition)
        self.lanes = Lanes(settings, template, token_key(db, settings.secret), edition.id)

    def run(self) -> SendReport:
        self.lanes.hire(self.options.concurrency)
        try:
            with interrupt_sets(self.interrupted), checkpoints_spaced(self.db):
                self._loop()
                self._drain()
        finally:
            self.lanes.close()
        return report.finish(self.db, self.edition.id, self.recorder)

    def _staff(self) -> bool:
        """Keep a connection open while the send goes on; False when it must pause."""
        decision = self.staffing.decide(self.lanes.live(), self.recorder.report.sent_now)
        if decision == "hire":
            self.lanes.hire(1)
        elif decision == "stop":
            self.recorder.fatal = self.recorder.fatal or self.recorder.busy_error
            self.recorder.stop_reason = self.recorder.stop_reason or "unreachable"
            return False
        return True

    def _loop(self) -> None:
        while True:
            self._collect(block=False)
            if self._should_stop():
                return
            self._beat()
            if not self._staff():
                return
            idle = self.lanes.idle_lane()
            if idle is None:
                self._collect(block=True, timeout=0.5 if self.in_flight else 0.05)
                continue
            jobs, wait = self.batches.next_slice(self.limiter.slice_size())
            if not jobs:
                if self.in_flight == 0 and self.batches.done():
                    return
                self._collect(block=True, timeout=min(max(wait, 0.01), 0.5))
                continue
            if not self._wait_for_rate(len(jobs)):
                return  # the slice was not handed out: it stays pending in the database
            jobs = self.batches.still_mailable(jobs)
            if jobs:
                self.in_flight += len(jobs)
                self.lanes.hand(idle, jobs)

    def _wait_for_rate(self, count: int) -> bool:
        """Wait until the rate limit lets ``count`` messages go; False when the send must stop."""
        pause = self.limiter.wait_time(count)
        while pause > 0 and not self._should_stop():
            self._collect(block=True, timeout=min(pause, 0.5))
            self._beat()  # a slow --rate waits longer than the lock stays fresh
            pause = self.limiter.wait_time(count)
        return not self._should_stop()

    def _should_stop(self) -> bool:
        if self.interrupted.is_set() and not self.recorder.stop_reason:
            self.recorder.stop_reason = "interrupted"
        return bool(self.recorder.stop_reason)

    def _beat(self) -> None:
        if not self.heartbeat.beat():
            self.recorder.stop_reason = "lock lost"

    def _drain(self) -> None:
        """Wait for the messages in flight and record them; nothing new is handed out.

        A transaction is bounded by smtp.deadline; after Ctrl-C the connections get two
        seconds to finish their message, then they are cut (the rows stay pending).
        """
        deadline = time.monotonic() + self.settings.smtp_deadline + 5
        while self.in_flight > 0:
            if self.interrupted.is_set():
                deadline = min(deadline, time.monotonic() + 2.0)
            if time.monotonic() >= deadline:
                self.lanes.abort()
                self._collect(block=False)
                return
            self._collect(block=True, timeout=0.2)
            self._beat()

    def _collect(self, *, block: bool, timeout: float = 0.0) -> None:
        """Write every finished result in one transaction, then let their lanes go on."""
        ready = self.lanes.poll(timeout if block else 0.0)
        if not ready:
            return
        self.in_flight -= len(ready)
        self.recorder.write(ready)
        self.lanes.proceed(not self._should_stop())
        if self.progress is not None:
            self.progress(self.recorder.report)


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
