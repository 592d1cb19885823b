"""The workers: each thread holds one SMTP connection, renders the edition for the person
in a job and sends it; every job gets exactly one result back, whatever happens."""

from __future__ import annotations

import queue
import random
import threading
import time

from newsletter import links
from newsletter.config import Settings
from newsletter.delivery.pipeline.jobs import Job, Options, Result
from newsletter.delivery.pipeline.planning import EditionMessages
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
    """Sends the slices of jobs it is handed until it gets ``None``; one ``Result`` per job.

    Within a slice, the next message goes only after the dispatcher has written the result
    of the one before (the go-ahead in ``acks``): each worker has at most one accepted
    message whose result is not yet in the database, which bounds the second copies a hard
    kill can cause to the number of workers. The next message is rendered while it waits.
    """

    def __init__(
        self,
        number: int,
        settings: Settings,
        template: EditionMessages,
        key: bytes,
        results: queue.Queue[Result],
        edition_id: int = 0,
    ) -> None:
        super().__init__(daemon=True)
        self.number = number
        self.settings = settings
        self.template = template
        self.key = key
        self.jobs: queue.SimpleQueue[list[Job] | None] = queue.SimpleQueue()
        self.acks: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: go on with the slice
        self.results = results
        self.edition_id = edition_id
        self.connection = smtp.Connection(settings)
        # Set before its last result goes out: the dispatcher hands a retired worker nothing.
        self.retired = False

    def run(self) -> None:
        connection = self.connection
        try:
            while not self.retired and (jobs := self.jobs.get()) is not None:
                self._send_slice(connection, jobs)
        finally:
            connection.close()

    def abort(self) -> None:
        """From the dispatcher's thread: end the transaction under way (Ctrl-C)."""
        self.connection.abort()

    def _send_slice(self, connection: smtp.Connection, jobs: list[Job]) -> None:
        ready = self._prepare(jobs[0])
        for index, job in enumerate(jobs):
            result = ready if isinstance(ready, Result) else self._send(connection, job, *ready)
            result.worker, result.last = self.number, index == len(jobs) - 1
            if isinstance(result.error, smtp.ConnectionFailed):
                # This connection is refused: the rest of the slice goes back, one fewer
                # connection carries the send (``Staffing`` decides about a new one).
                self.retired, result.last = True, True
                self.results.put(result)
                for rest in jobs[index + 1 :]:
                    self.results.put(Result(rest, skipped=True, worker=self.number))
                return
            self.results.put(result)
            if result.last:
                return
            ready = self._prepare(jobs[index + 1])
            if not self.acks.get():
                for rest in jobs[index + 1 :]:
                    self.results.put(Result(rest, skipped=True, worker=self.number))
                return

    def _prepare(self, job: Job) -> tuple[bytes, str] | Result:
        """The message for the job, or the result that says why there is none."""
        assert job.subscriber_id is not None
        try:
            return render_for(
                self.template.for_lang(job.lang), self.settings, self.key, job.email, job.name,
                job.subscriber_id, job.topic_id,
            )  # fmt: skip
        except message.AddressError as exc:
            return Result(job, invalid=str(exc))
        except Exception as exc:  # the dispatcher must always get an answer
            return Result(job, crash=exc)

    def _send(self, connection: smtp.Connection, job: Job, data: bytes, message_id: str) -> Result:
        assert job.subscriber_id is not None
        # VERP: the bounce address names this person and edition (links.envelope_sender).
        sender = links.envelope_sender(self.settings, self.key, job.subscriber_id, self.edition_id)
        try:
            reply = connection.send(sender, job.email, data)
        except smtp.SmtpError as exc:
            return Result(job, error=exc)
        except Exception as exc:  # the dispatcher must always get an answer
            return Result(job, crash=exc)
        return Result(job, reply=reply, message_id=message_id)


def start(
    count: int,
    settings: Settings,
    template: EditionMessages,
    key: bytes,
    results: queue.Queue[Result],
    edition_id: int = 0,
    first: int = 0,
) -> list[Worker]:
    """``count`` running workers sharing the result queue, numbered from ``first``."""
    crew = [
        Worker(number, settings, template, key, results, edition_id)
        for number in range(first, first + count)
    ]
    for worker in crew:
        worker.start()
    return crew


def stop(crew: list[Worker], *, timeout: float) -> None:
    """Ask each worker to finish after its current message and wait a while for them."""
    for worker in crew:
        worker.acks.put(False)  # one waiting for a go-ahead drops the rest of its slice
        worker.jobs.put(None)
    for worker in crew:
        worker.join(timeout=timeout)


class Staffing:
    """When to open a new connection. A refused one retires its worker (the concurrency
    drops by one); with none left, one is tried again after a back-off, unless nothing got
    through at all (then the server is down or turns us away: waiting would hide it)."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.reconnects = 0
        self.reconnect_at = 0.0
        self.sent_seen = 0

    def decide(self, live: int, sent_now: int) -> str:
        """``ok``, ``hire`` (one new worker now) or ``stop`` (pause the send)."""
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
