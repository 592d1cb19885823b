"""Handing out work: pending rows claimed in batches (consent checked for the whole batch),
cut into slices for the lanes, with due retries first.

A slice is re-checked just before it leaves when its batch's check is older than
``consent.CONSENT_FRESH``, so an unsubscribe counts from the next slice on.
"""

from __future__ import annotations

import heapq
import math
import time

from sqlite_utils import Database

from newsletter.delivery.pipeline import consent
from newsletter.delivery.pipeline.jobs import Job, Options
from newsletter.delivery.pipeline.results import Recorder


class Batches:
    """The pending rows of one edition, claimed in id order, and the retry heap."""

    def __init__(self, db: Database, edition_id: int, options: Options, run: Recorder) -> None:
        self.db = db
        self.edition_id = edition_id
        self.options = options
        self.run = run
        self.buffer: list[Job] = []  # claimed and checked, in reverse order (pop from the end)
        self.after_id = 0
        self.exhausted = False  # no more pending rows to claim
        self.most = max(1, math.ceil(options.batch_size / options.concurrency))

    def _claim(self) -> None:
        """Load the next batch of pending rows and close those that may no longer be mailed."""
        batch = pending_jobs(self.db, self.edition_id, self.after_id, self.options.batch_size)
        if not batch:
            self.exhausted = True
            return
        self.after_id = batch[-1].delivery_id
        refused = consent.refusal_reasons(self.db, batch)
        if refused:
            self.run.close_refused(refused)
        self.buffer = [job for job in reversed(batch) if job.delivery_id not in refused]

    def next_slice(self, size: int) -> tuple[list[Job], float]:
        """Up to ``size`` jobs to send now, or ([], seconds worth waiting) when none is ready."""
        size = min(size, self.most)
        current = time.monotonic()
        retries = self.run.retries
        jobs: list[Job] = []
        while self.run.requeued and len(jobs) < size:  # their connection was refused
            jobs.append(self.run.requeued.pop())
        while retries and retries[0][0] <= current and len(jobs) < size:
            jobs.append(heapq.heappop(retries)[1])
        while not jobs and not self.buffer and not self.exhausted:  # a batch may close entirely
            self._claim()
        while self.buffer and len(jobs) < size:
            jobs.append(self.buffer.pop())
        if jobs:
            return jobs, 0.0
        if retries:
            return [], retries[0][0] - current
        return [], 0.5

    def still_mailable(self, jobs: list[Job]) -> list[Job]:
        """The slice without those who lost consent since their batch was checked."""
        if time.monotonic() - min(job.checked for job in jobs) < consent.CONSENT_FRESH:
            return jobs
        refused = consent.refusal_reasons(self.db, jobs)
        if refused:
            self.run.close_refused(refused)
        return [job for job in jobs if job.delivery_id not in refused]

    def done(self) -> bool:
        return self.exhausted and not self.buffer and self.run.idle()


def pending_jobs(db: Database, edition_id: int, after_id: int, limit: int) -> list[Job]:
    """The next ``limit`` pending rows after ``after_id``, by id, stamped as checked now
    (the caller checks their consent before any of them leaves)."""
    rows = db.execute(
        "SELECT d.id, d.subscriber_id, d.topic_id, s.email, s.name, d.attempts,"
        " COALESCE(d.lang, s.lang)"  # the variant: the language fixed with the log
        " FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id"
        " WHERE d.edition_id = ? AND d.status = 'pending' AND d.id > ?"
        " ORDER BY d.id LIMIT ?",
        [edition_id, after_id, limit],
    ).fetchall()
    checked = time.monotonic()
    return [Job(*row, checked=checked) for row in rows]
