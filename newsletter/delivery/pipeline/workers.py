"""The workers: each thread holds one SMTP connection, renders the edition for the person
in a job and sends it; every job gets exactly one result back, whatever happens."""

from __future__ import annotations

import queue
import threading

from newsletter import links
from newsletter.config import Settings
from newsletter.delivery.pipeline.jobs import Job, Result
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
    ) -> None:
        super().__init__(daemon=True)
        self.number = number
        self.settings = settings
        self.template = template
        self.key = key
        self.jobs: queue.SimpleQueue[list[Job] | None] = queue.SimpleQueue()
        self.acks: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: go on with the slice
        self.results = results
        self.sender = settings.sender_address

    def run(self) -> None:
        connection = smtp.Connection(self.settings)
        try:
            while (jobs := self.jobs.get()) is not None:
                self._send_slice(connection, jobs)
        finally:
            connection.close()

    def _send_slice(self, connection: smtp.Connection, jobs: list[Job]) -> None:
        ready = self._prepare(jobs[0])
        for index, job in enumerate(jobs):
            result = ready if isinstance(ready, Result) else self._send(connection, job, *ready)
            result.worker, result.last = self.number, index == len(jobs) - 1
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
        try:
            reply = connection.send(self.sender, job.email, data)
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
) -> list[Worker]:
    """``count`` running workers sharing the result queue."""
    crew = [Worker(number, settings, template, key, results) for number in range(count)]
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
