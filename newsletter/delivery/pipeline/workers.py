"""The workers: each thread holds one SMTP connection, renders the edition for the person
in a job and sends it; every job gets exactly one result back, whatever happens."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable

from newsletter import links
from newsletter.config import Settings
from newsletter.delivery.pipeline.jobs import Job, Options, Result
from newsletter.mail import message, smtp


def render_for(
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


class Worker(threading.Thread):
    """Takes jobs until it gets ``None``; puts one ``Result`` per job."""

    def __init__(
        self,
        settings: Settings,
        template: message.EditionMessage,
        key: bytes,
        jobs: queue.Queue[Job | None],
        results: queue.Queue[Result],
        edition_id: int = 0,
    ) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.template = template
        self.key = key
        self.jobs = jobs
        self.results = results
        self.edition_id = edition_id
        self.connection = smtp.Connection(settings)

    def run(self) -> None:
        connection = self.connection
        try:
            while (job := self.jobs.get()) is not None:
                try:
                    result = self._deliver(connection, job)
                except Exception as exc:  # the dispatcher must always get an answer
                    result = Result(job, crash=exc)
                self.results.put(result)
                if isinstance(result.error, smtp.ConnectionFailed):
                    return  # this connection is refused: the dispatcher runs one fewer
        finally:
            connection.close()

    def abort(self) -> None:
        """From the dispatcher's thread: end the transaction under way (Ctrl-C)."""
        self.connection.abort()

    def _deliver(self, connection: smtp.Connection, job: Job) -> Result:
        assert job.subscriber_id is not None
        try:
            data, message_id = render_for(
                self.template, self.settings, self.key, job.email, job.name,
                job.subscriber_id, job.topic_id,
            )  # fmt: skip
        except message.AddressError as exc:
            return Result(job, invalid=str(exc))
        try:
            # VERP: the bounce address names this person and edition (links.envelope_sender).
            sender = links.envelope_sender(
                self.settings, self.key, job.subscriber_id, self.edition_id
            )
            reply = connection.send(sender, job.email, data)
        except smtp.SmtpError as exc:
            return Result(job, error=exc)
        return Result(job, reply=reply, message_id=message_id)


def start(
    count: int,
    settings: Settings,
    template: message.EditionMessage,
    key: bytes,
    jobs: queue.Queue[Job | None],
    results: queue.Queue[Result],
    edition_id: int = 0,
) -> list[Worker]:
    """``count`` running workers sharing the job and result queues."""
    crew = [Worker(settings, template, key, jobs, results, edition_id) for _ in range(count)]
    for worker in crew:
        worker.start()
    return crew


def stop(crew: list[Worker], jobs: queue.Queue[Job | None], *, timeout: float) -> None:
    """Ask each worker to finish after its current job and wait a while for them."""
    for _ in crew:
        jobs.put(None)
    for worker in crew:
        worker.join(timeout=timeout)


class Crew:
    """The running workers. A refused connection retires its worker (the concurrency drops
    by one); with none left, one is tried again after a back-off, unless nothing got
    through at all (then the server is down or turns us away: waiting would hide it)."""

    def __init__(self, options: Options, start_one: Callable[[], Worker]) -> None:
        self.options = options
        self.start_one = start_one
        self.members: list[Worker] = []
        self.reconnects = 0
        self.reconnect_at = 0.0
        self.sent_seen = 0

    def hire(self, count: int) -> None:
        self.members += [self.start_one() for _ in range(count)]

    def live(self) -> int:
        return sum(worker.is_alive() for worker in self.members)

    def keep_staffed(self, sent_now: int) -> bool:
        """False when no connection is left and none should be tried again."""
        if sent_now > self.sent_seen:
            self.sent_seen, self.reconnects = sent_now, 0  # refusals were about capacity
        if self.live() > 0:
            return True
        if self.reconnects >= self.options.max_retries or sent_now == 0:
            return False
        current = time.monotonic()
        if not self.reconnect_at:
            delay = self.options.retry_base * (2**self.reconnects)
            self.reconnect_at = current + delay * (0.5 + random.random() / 2)
        if current >= self.reconnect_at:
            self.reconnects += 1
            self.reconnect_at = 0.0
            self.hire(1)
        return True

    def abort(self) -> None:
        for worker in self.members:
            worker.abort()
