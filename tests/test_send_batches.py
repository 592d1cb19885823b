"""Work handed out in slices and results written in batches, with every guarantee kept:
consent re-checked before a slice leaves, and never more accepted messages without their
result in the database than there are connections (the bound on copies after a kill)."""

from __future__ import annotations

import threading
import time

from send_helpers import add_people, delivery_rows, make_edition, make_topic

from newsletter.audience import subscribers
from newsletter.delivery import pipeline
from newsletter.delivery.pipeline import consent, jobs
from newsletter.delivery.pipeline.batches import Batches
from newsletter.delivery.pipeline.jobs import Options, SendReport
from newsletter.delivery.pipeline.planning import load_edition, start
from newsletter.delivery.pipeline.results import Recorder
from newsletter.store.db import open_db


def test_accepted_but_unrecorded_messages_never_exceed_the_connections(db, settings, smtp_sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 90)
    edition = make_edition(db, [topic])
    watcher = open_db(settings.db)
    holder = open_db(settings.db)
    lock = threading.Lock()
    worst = []

    def hold_the_database() -> None:
        # Another writer (an import, say) keeps the send from writing results for a while:
        # workers must wait for their go-ahead instead of sending the rest of their slices.
        holder.execute("BEGIN IMMEDIATE")
        time.sleep(0.5)
        holder.execute("COMMIT")

    def reply(envelope):
        # Called for each message before the server accepts it: how many messages it has
        # already accepted are still pending in the database right now?
        with lock:
            if len(smtp_sink.messages) == 10:
                threading.Thread(target=hold_the_database).start()
            accepted = [r for m in smtp_sink.messages for r in m.rcpt_tos]
            if accepted:
                marks = ",".join("?" * len(accepted))
                pending = watcher.execute(
                    "SELECT COUNT(*) FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
                    f" WHERE d.status = 'pending' AND s.email IN ({marks})",
                    accepted,
                ).fetchone()[0]
                worst.append(pending)
        return None

    smtp_sink.reply = reply
    mail = settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    report = pipeline.send(db, mail, edition, concurrency=3, batch_size=60, rate=10_000)
    watcher.close()
    holder.close()

    assert report.sent == 90
    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == emails
    # The two other connections may each have one accepted message not yet written.
    assert worst and max(worst) <= 2


def batches_for(db, settings, people: int, **options) -> tuple[Batches, Recorder, int]:
    topic = make_topic(db)
    add_people(db, topic, people)
    edition = load_edition(db, make_edition(db, [topic]))
    start(db, edition, False)
    values = {"rate": 1000, "concurrency": 1, "batch_size": 20, "max_errors": 5,
              "max_retries": 3, "retry_base": 1, **options}  # fmt: skip
    numbers = {"pending": people, "sent": 0, "failed": 0}
    report = SendReport.from_counts(edition.id, "sending", numbers)
    run = Recorder(db, settings, edition.id, Options(**values), report)
    return Batches(db, edition.id, Options(**values), run), run, edition.id


def test_slices_take_due_retries_first_then_rows_in_id_order(db, settings):
    batches, run, _edition = batches_for(db, settings, 30, concurrency=2)

    first, _ = batches.next_slice(32)
    assert len(first) == 10  # a batch of 20 shared by two workers
    ids = [job.delivery_id for job in first]
    assert ids == sorted(ids)
    run.retries.append((time.monotonic() - 1, first[3]))
    second, _ = batches.next_slice(4)
    assert second[0] is first[3] and [j.delivery_id for j in second[1:]] == [
        ids[-1] + 1,
        ids[-1] + 2,
        ids[-1] + 3,
    ]
    rest = []
    while True:
        jobs_, _wait = batches.next_slice(32)
        if not jobs_:
            break
        rest += jobs_
    assert len(rest) == 30 - 10 - 3 and batches.done()


def test_an_unsubscribe_counts_from_the_next_slice(db, settings, monkeypatch):
    batches, _run, edition = batches_for(db, settings, 12, batch_size=12)
    emails = [row["email"] for row in delivery_rows(db, edition)]
    first, _ = batches.next_slice(4)  # the whole batch of 12 was claimed and checked
    assert len(batches.still_mailable(first)) == 4

    quitter = subscribers.find(db, emails[5])
    subscribers.unsubscribe(db, quitter["id"], None, "web")
    second, _ = batches.next_slice(4)
    monkeypatch.setattr(consent, "CONSENT_FRESH", 0.0)  # the batch's check is now old
    assert [j.email for j in batches.still_mailable(second)] == [emails[i] for i in (4, 6, 7)]
    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    assert (rows[emails[5]]["status"], rows[emails[5]]["reason"]) == ("failed", "unsubscribed")
    assert {row["status"] for e, row in rows.items() if e != emails[5]} == {"pending"}


def test_the_slice_size_follows_the_rate():
    assert jobs.RateLimiter(8).slice_size() == 1  # a slow send paces every message
    assert jobs.RateLimiter(100).slice_size() == 5
    assert jobs.RateLimiter(10_000).slice_size() == 32
    limiter = jobs.RateLimiter(100)
    limiter.tokens = limiter.capacity
    assert limiter.wait_time(5) == 0.0 and limiter.wait_time(10) > 0
