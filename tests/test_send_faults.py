"""A fault-injecting SMTP server: every recipient still ends ``sent`` or ``failed`` with why."""

from __future__ import annotations

import json

import pytest
from conftest import free_port
from send_helpers import add_people, delivery_rows, faulty_sink, make_edition, make_topic

from newsletter.audience import subscribers
from newsletter.delivery import bounces, pipeline
from newsletter.errors import NewsletterError
from newsletter.mail import smtp
from newsletter.store.db import open_db


@pytest.fixture
def sink():
    with faulty_sink() as server:
        yield server


def test_temporary_and_permanent_failures_and_dropped_connections(db, settings, sink, cli):
    topic = make_topic(db)
    emails = add_people(db, topic, 14)
    edition = make_edition(db, [topic])
    busy_twice, bounce, content, hopeless, dropped, closing = (
        emails[0:2],
        emails[2],
        emails[3],
        emails[4],
        emails[5],
        emails[6],
    )

    def fault(server, envelope):
        rcpt = envelope.rcpt_tos[0]
        tries = sink.attempts[rcpt]
        if rcpt in busy_twice and tries <= 2:
            return "451 4.7.1 greylisted, try again later"
        if rcpt == bounce:
            return "550 5.1.1 no such user here"
        if rcpt == content:
            return "554 5.7.1 message content refused"
        if rcpt == hopeless:
            return "452 4.2.2 mailbox full"
        if rcpt == dropped and tries == 1:
            return "drop"
        if rcpt == closing and tries == 1:
            return "421 4.3.2 shutting down this session"
        return None

    sink.fault = fault
    mail = settings.with_overrides(smtp_host=sink.host, smtp_port=sink.port)
    report = pipeline.send(
        db, mail, edition, concurrency=3, batch_size=4, max_errors=100, retry_base=0.01
    )

    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    assert all(row["status"] in ("sent", "failed") for row in rows.values())
    assert (report.status, report.pending) == ("sent", 0)
    assert report.sent == 11 and report.failed == 3
    for email in busy_twice:
        assert rows[email]["status"] == "sent" and rows[email]["attempts"] == 3
    assert rows[dropped]["status"] == "sent" and rows[dropped]["attempts"] == 2
    assert rows[closing]["status"] == "sent" and rows[closing]["attempts"] == 2
    assert (rows[bounce]["status"], rows[bounce]["reason"]) == ("failed", "hard bounce")
    assert rows[bounce]["last_reply"] == "550 5.1.1 no such user here"
    assert (rows[content]["status"], rows[content]["reason"]) == ("failed", "rejected")
    assert rows[hopeless]["reason"] == "gave up after 5 attempts"
    assert rows[hopeless]["last_reply"] == "452 4.2.2 mailbox full"
    assert sink.attempts[hopeless] == 5
    # Each sent row arrived exactly once; failed ones never.
    received = sorted(r for m in sink.messages for r in m.rcpt_tos)
    assert received == sorted(e for e, row in rows.items() if row["status"] == "sent")
    assert all(row["message_id"] for row in rows.values() if row["status"] == "sent")

    bounced = subscribers.find(db, bounce)
    assert (bounced["status"], bounced["hard_bounces"]) == ("bounced", 1)
    actions = [
        r[0]
        for r in db.execute(
            "SELECT action FROM events WHERE subscriber_id = ? ORDER BY id", [bounced["id"]]
        )
    ]
    assert actions[-2:] == ["hard_bounce", "status:bounced"]
    assert subscribers.find(db, content)["status"] == "active"
    assert subscribers.find(db, hopeless)["status"] == "active"

    # Staff can see who was not reached and why.
    listed = json.loads(cli.ok("status", str(edition), "--failed", "--json").stdout)
    assert {(f["email"], f["reason"], f["reply"]) for f in listed} == {
        (bounce, "hard bounce", "550 5.1.1 no such user here"),
        (content, "rejected", "554 5.7.1 message content refused"),
        (hopeless, "gave up after 5 attempts", "452 4.2.2 mailbox full"),
    }
    text = cli.ok("status", str(edition), "--failed").stdout
    assert f"{bounce}" in text and "3 failed" in text


def test_hard_bounce_limit_counts_bounces_across_editions(db, settings, sink):
    topic = make_topic(db)
    [email] = add_people(db, topic, 1)
    sink.fault = lambda server, envelope: "550 5.1.1 unknown user"
    mail = settings.with_overrides(smtp_host=sink.host, smtp_port=sink.port, hard_bounce_limit=2)
    pipeline.send(db, mail, make_edition(db, [topic]))
    person = subscribers.find(db, email)
    assert (person["status"], person["hard_bounces"]) == ("active", 1)
    pipeline.send(db, mail, make_edition(db, [topic]))
    person = subscribers.find(db, email)
    assert (person["status"], person["hard_bounces"]) == ("bounced", 2)
    third = make_edition(db, [topic])
    with pytest.raises(NewsletterError, match="has no recipients"):
        pipeline.send(db, mail, third)  # bounced people are not recipients
    assert sink.attempts[email] == 2


def test_errors_pause_the_send_once_retries_are_used_up_and_retry_failed_finishes(db, sink, cli):
    topic = make_topic(db)
    add_people(db, topic, 20)
    edition = make_edition(db, [topic])
    sink.fault = lambda server, envelope: "451 4.3.0 temporary local problem"
    env = {"NEWSLETTER_SMTP_HOST": sink.host, "NEWSLETTER_SMTP_PORT": str(sink.port)}

    result = cli("send", str(edition), "--force", "--yes", "--max-errors", "3", env=env)

    assert result.exit_code == 1
    assert "paused after 3 errors in a row (last: 451 4.3.0 temporary local problem)" in (
        result.stderr
    )
    assert f"newsletter send {edition}` again" in result.stderr
    numbers = pipeline.status(db, edition)
    # A 4xx counts toward --max-errors only once its retries are used up: three people
    # failed after all their attempts, the rest were never given up on.
    gave_up = numbers["failed"]
    assert gave_up in (3, 4)  # the third, and perhaps the one on the other connection
    assert (numbers["status"], numbers["pending"], numbers["sent"]) == ("paused", 20 - gave_up, 0)
    assert all(sink.attempts[r["email"]] == 5 for r in delivery_rows(db, edition)
               if r["status"] == "failed")  # fmt: skip
    assert not sink.messages

    sink.fault = None
    resumed = cli.ok("send", str(edition), "--force", "--yes", "--json", env=env)
    assert json.loads(resumed.stdout)["failed"] == gave_up
    assert pipeline.status(db, edition)["status"] == "sent"  # nothing pending
    again = cli.ok("send", str(edition), "--force", "--yes", "--retry-failed", "--json", env=env)
    assert json.loads(again.stdout)["sent"] == 20
    assert len(sink.messages) == 20


def test_unreachable_server_is_a_clear_error_and_keeps_everything_pending(db, settings, cli):
    topic = make_topic(db)
    add_people(db, topic, 5)
    edition = make_edition(db, [topic])
    port = free_port()  # nobody listens here
    mail = settings.with_overrides(smtp_host="127.0.0.1", smtp_port=port)

    with pytest.raises(smtp.ConnectionFailed, match=f"cannot reach SMTP server 127.0.0.1:{port}"):
        pipeline.send(db, mail, edition)
    numbers = pipeline.status(db, edition)
    assert (numbers["status"], numbers["pending"], numbers["total"]) == ("paused", 5, 5)
    assert db.execute("SELECT lock_owner FROM editions").fetchone()[0] is None

    env = {"NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(port)}
    result = cli("send", str(edition), "--force", "--yes", env=env)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach SMTP server")
    assert "5 still pending" in lines[0]
    assert pipeline.status(db, edition)["pending"] == 5

    rows = delivery_rows(db, edition)
    assert [row["attempts"] for row in rows] == [0] * 5  # an outage uses up no retries
    assert any("cannot reach" in (row["last_reply"] or "") for row in rows)

    as_json = cli("send", str(edition), "--force", "--yes", "--json", env=env)
    assert as_json.exit_code == 1 and as_json.stderr.startswith("error: cannot reach")
    by_lang = {"languages": pipeline.language_counts(db, edition)}
    reported = {**pipeline.status(db, edition), **bounces.edition_counts(db, edition), **by_lang}
    assert json.loads(as_json.stdout) == reported
    assert json.loads(as_json.stdout)["pending"] == 5


def test_an_address_that_cannot_go_into_a_header_fails_alone(db, settings, sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 2)
    # A legacy row with a non-ASCII local part (SMTPUTF8 is not supported).
    db.execute("UPDATE subscribers SET email = 'pävi@example.org' WHERE email = ?", [emails[0]])
    edition = make_edition(db, [topic])
    mail = settings.with_overrides(smtp_host=sink.host, smtp_port=sink.port)
    report = pipeline.send(db, mail, edition)
    rows = delivery_rows(db, edition)
    assert [(r["status"], r["reason"]) for r in rows] == [
        ("failed", "invalid address"),
        ("sent", None),
    ]
    assert report.sent == 1 and [m.rcpt_tos for m in sink.messages] == [[emails[1]]]


def test_only_a_refused_address_counts_as_a_hard_bounce(db, settings, sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 6)
    dmarc, blocked, sender_side, null_mx, unknown, fine = emails
    # Policy refusals are about us (our DKIM/DMARC, our IP on a blocklist), not the reader:
    # with the default limit of one, counting them would mark good subscribers bounced.
    sink.rcpt_fault = lambda address: {
        blocked: "550 5.7.1 client host 127.0.0.1 blocked using a DNSBL",
        sender_side: "553 5.1.8 bad sender's system address",
    }.get(address)
    after_data = {
        dmarc: "550 5.7.26 unauthenticated mail is prohibited",
        null_mx: "556 5.1.10 recipient address has null MX",
        unknown: "550 5.1.1 no such user",
    }
    sink.fault = lambda server, envelope: after_data.get(envelope.rcpt_tos[0])
    mail = settings.with_overrides(smtp_host=sink.host, smtp_port=sink.port)
    edition = make_edition(db, [topic])

    report = pipeline.send(db, mail, edition, max_errors=100)

    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    for email in (dmarc, blocked, sender_side):
        assert (rows[email]["status"], rows[email]["reason"]) == ("failed", "rejected")
        person = subscribers.find(db, email)
        assert (person["status"], person["hard_bounces"]) == ("active", 0)
    for email in (null_mx, unknown):
        assert (rows[email]["status"], rows[email]["reason"]) == ("failed", "hard bounce")
        assert subscribers.find(db, email)["status"] == "bounced"
    assert rows[fine]["status"] == "sent"
    assert (report.sent, report.failed, report.pending) == (1, 5, 0)


def test_a_bounce_for_someone_erased_meanwhile_keeps_the_other_results(db, settings, sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 3)
    other = open_db(settings.db)  # an erasure from the CLI while the message is out

    def fault(server, envelope):
        if envelope.rcpt_tos == [emails[1]]:
            subscribers.erase(other, emails[1], "test")
            return "550 5.1.1 no such user"
        return None

    sink.fault = fault
    mail = settings.with_overrides(smtp_host=sink.host, smtp_port=sink.port)
    edition = make_edition(db, [topic])
    try:
        report = pipeline.send(db, mail, edition, concurrency=1)
    finally:
        other.close()

    rows = delivery_rows(db, edition)
    assert [(row["status"], row["reason"]) for row in rows] == [
        ("sent", None),
        ("failed", "erased"),
        ("sent", None),
    ]
    assert rows[1]["subscriber_id"] is None
    assert (report.status, report.sent, report.pending) == ("sent", 2, 0)
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == [emails[0], emails[2]]
