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
    """Takes jobs until it gets ``None``; puts one ``Result`` per job."""

    def __init__(
        self,
        settings: Settings,
        template: EditionMessages,
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
            data, message_id = render_for(
                self.template.for_lang(job.lang), self.settings, self.key, job.email, job.name,
                job.subscriber_id, job.topic_id,
            )  # fmt: skip
        except message.AddressError as exc:
            return Result(job, invalid=str(exc))
        try:
            reply = connection.send(self.sender, job.email, data)
        except smtp.SmtpError as exc:
            return Result(job, error=exc)
        return Result(job, reply=reply, message_id=message_id)


def start(
    count: int,
    settings: Settings,
    template: EditionMessages,
    key: bytes,
    jobs: queue.Queue[Job | None],
    results: queue.Queue[Result],
) -> list[Worker]:
    """``count`` running workers sharing the job and result queues."""
    crew = [Worker(settings, template, key, jobs, results) for _ in range(count)]
    for worker in crew:
        worker.start()
    return crew


def stop(crew: list[Worker], jobs: queue.Queue[Job | None], *, timeout: float) -> None:
    """Ask each worker to finish after its current job and wait a while for them."""
    for _ in crew:
        jobs.put(None)
    for worker in crew:
        worker.join(timeout=timeout)
