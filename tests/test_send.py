"""Sending an edition into a real SMTP server on loopback, and the ``send``/``status`` CLI."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from email.utils import getaddresses, parseaddr
from urllib.parse import unquote

import pytest
from conftest import need_tool
from send_helpers import (
    HTML,
    SUBJECT,
    TEXT,
    add_people,
    delivery_rows,
    make_edition,
    make_topic,
    parts,
)

from newsletter import links
from newsletter.audience import subscribers
from newsletter.clock import now_iso
from newsletter.delivery import pipeline
from newsletter.errors import ConfigError, NewsletterError
from newsletter.mail import placeholders, smtp
from newsletter.store.db import open_db, token_key


@pytest.fixture
def mail_settings(settings, smtp_sink):
    return settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)


def smtp_env(sink) -> dict[str, str]:
    return {"NEWSLETTER_SMTP_HOST": sink.host, "NEWSLETTER_SMTP_PORT": str(sink.port)}


def test_every_recipient_gets_one_correct_message(db, mail_settings, smtp_sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 7)
    other = make_topic(db, "kulttuuri", "Kulttuuri")
    add_people(db, other, 2, prefix="toinen")  # another topic's readers get nothing
    edition = make_edition(db, [topic])

    report = pipeline.send(db, mail_settings, edition, concurrency=3, batch_size=3)

    assert (report.outcome, report.status) == ("done", "sent")
    assert (report.sent, report.failed, report.pending, report.total) == (7, 0, 0, 7)
    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == emails
    key = token_key(db, mail_settings.secret)
    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    message_ids = set()
    for received in smtp_sink.messages:
        email = received.rcpt_tos[0]
        person = subscribers.find(db, email)
        msg = received.message
        assert received.mail_from == "uutiskirje@example.fi"
        assert msg.get_content_type() == "multipart/alternative"
        kinds = [part.get_content_type() for part in msg.iter_parts()]
        assert kinds == ["text/plain", "text/html"]
        assert str(msg["Subject"]) == SUBJECT
        assert parseaddr(str(msg["From"]))[1] == "uutiskirje@example.fi"
        assert str(msg["Reply-To"]) == "info@example.fi"
        assert getaddresses([str(msg["To"])]) == [(person["name"], email)]
        assert msg["Date"] is not None
        assert msg["Message-ID"].endswith("@example.fi>")
        message_ids.add(msg["Message-ID"])
        assert msg["List-Id"].endswith("<vaikuttavuus.example.fi>")
        url = links.unsubscribe_url(mail_settings, key, person["id"], topic)
        mailto = links.unsubscribe_mailto(mail_settings, key, person["id"], topic)
        assert msg["List-Unsubscribe"] == f"<{url}>, <{mailto}>"
        assert url.startswith("https://uutiskirje.example.fi/u/")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        token = url.rsplit("/", 1)[1]
        assert links.read_unsubscribe(key, token) == (person["id"], topic)
        text, html = parts(msg)
        assert f"Peru tilaus: {url}" in text
        assert f'<a href="{url}">Peru tilaus</a>' in html
        assert links.preferences_url(mail_settings, key, person["id"]) in html
        assert f"Hei {person['name']}," in text
        assert "Säätiö myönsi 1,2 miljoonaa euroa" in text
        assert placeholders.remaining(text) == placeholders.remaining(html) == []
        assert rows[email]["status"] == "sent"
        assert rows[email]["message_id"] == msg["Message-ID"]
        assert rows[email]["last_reply"].startswith("250")
        assert rows[email]["attempts"] == 1
    assert len(message_ids) == 7
    assert pipeline.status(db, edition) == {
        "edition": edition,
        "status": "sent",
        "total": 7,
        "sent": 7,
        "failed": 0,
        "pending": 0,
    }
    lock = db.execute("SELECT lock_owner, sent_at FROM editions WHERE id = ?", [edition])
    owner, sent_at = lock.fetchone()
    assert owner is None and sent_at


def test_line_breaks_in_a_stored_name_cannot_add_headers_or_recipients(
    db, mail_settings, smtp_sink
):
    topic = make_topic(db)
    [email] = add_people(db, topic, 1)
    # add() cleans names; a row written by older code or by hand may still hold CR/LF.
    evil = "Eve\r\nBcc: victim@evil.example\r\nX-Injected: yes"
    db.execute("UPDATE subscribers SET name = ?", [evil])
    edition = make_edition(db, [topic])

    pipeline.send(db, mail_settings, edition)

    [received] = smtp_sink.messages
    assert received.rcpt_tos == [email]
    msg = received.message
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert [address for _name, address in getaddresses([str(msg["To"])])] == [email]
    assert sorted(msg.keys()) == sorted(
        [
            "From",
            "Subject",
            "Reply-To",
            "List-Id",
            "To",
            "Date",
            "Message-ID",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "MIME-Version",
            "Content-Type",
        ]
    )
    assert "Bcc" in getaddresses([str(msg["To"])])[0][0]  # kept inside the display name
    text, _html = parts(msg)
    assert "Hei Eve Bcc: victim@evil.example X-Injected: yes," in text  # shown on one line


def test_resume_mails_only_pending_rows(db, mail_settings, smtp_sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 6)
    edition = make_edition(db, [topic])
    # The server refuses everyone after the first three: the send pauses once the first
    # of them has used up its retries (a 4xx counts toward --max-errors only then).
    accepted = []

    def reply(envelope):
        if len(accepted) >= 3:
            return "451 4.3.2 system busy"
        accepted.append(envelope.rcpt_tos[0])
        return None

    smtp_sink.reply = reply
    first = pipeline.send(db, mail_settings, edition, concurrency=1, max_errors=1)
    assert first.outcome == "paused"
    assert "errors in a row" in first.message and "send" in first.message
    assert (first.sent, first.failed, first.pending) == (3, 1, 2)
    assert pipeline.status(db, edition)["status"] == "paused"

    smtp_sink.reply = None
    second = pipeline.send(db, mail_settings, edition, concurrency=2, retry_failed=True)
    assert (second.status, second.sent, second.pending, second.sent_now) == ("sent", 6, 0, 3)
    received = sorted(r for m in smtp_sink.messages for r in m.rcpt_tos)
    assert received == emails  # once each: nothing sent was sent again

    third = pipeline.send(db, mail_settings, edition)
    assert third.sent_now == 0 and len(smtp_sink.messages) == 6


def test_recipients_are_fixed_at_the_first_send_and_include_new_adds_newcomers(
    db, mail_settings, smtp_sink
):
    topic = make_topic(db)
    add_people(db, topic, 3)
    edition = make_edition(db, [topic])
    pipeline.send(db, mail_settings, edition)
    [late] = add_people(db, topic, 1, prefix="myohainen")

    assert pipeline.plan(db, edition)[0] == 0
    again = pipeline.send(db, mail_settings, edition)
    assert again.sent_now == 0 and not smtp_sink.to(late)

    count, first = pipeline.plan(db, edition, include_new=True)
    assert count == 1 and [p.email for p in first] == [late]
    report = pipeline.send(db, mail_settings, edition, include_new=True)
    assert (report.sent_now, report.total) == (1, 4)
    assert len(smtp_sink.to(late)) == 1 and len(smtp_sink.messages) == 4


def test_people_who_lose_consent_before_their_batch_are_closed_with_the_reason(
    db, mail_settings, smtp_sink
):
    topic = make_topic(db)
    emails = add_people(db, topic, 6)
    edition = make_edition(db, [topic])
    gate = {"open": False}
    smtp_sink.reply = lambda envelope: None if gate["open"] else "554 5.7.1 relaying denied"
    with pytest.raises(smtp.ConnectionFailed, match="refused 3 recipients in a row"):
        pipeline.send(db, mail_settings, edition, concurrency=1)
    assert pipeline.status(db, edition)["pending"] == 6 and not smtp_sink.messages

    ids = [subscribers.find(db, e)["id"] for e in emails]
    subscribers.unsubscribe(db, ids[0], topic, "test")
    subscribers.set_status(db, ids[1], "blocklisted", "test")
    subscribers.set_status(db, ids[2], "bounced", "test")
    subscribers.erase(db, emails[3], "test")
    gate["open"] = True
    report = pipeline.send(db, mail_settings, edition)

    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == emails[4:]
    reasons = {row["subscriber_id"]: row["reason"] for row in delivery_rows(db, edition)}
    assert reasons[ids[0]] == "unsubscribed"
    assert reasons[ids[1]] == "blocklisted"
    assert reasons[ids[2]] == "bounced"
    assert reasons[None] == "erased"
    assert (report.status, report.sent, report.failed) == ("sent", 2, 4)


def test_unsubscribing_during_a_slow_send_stops_mail_at_once(db, settings, smtp_sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 10)
    edition = make_edition(db, [topic])
    quitter, next_one = emails[7], emails[4]
    other = open_db(settings.db)  # the web service's connection, say
    done = threading.Event()

    def reply(envelope):
        # While the third message is being received, two people unsubscribe.
        if envelope.rcpt_tos == [emails[2]] and not done.is_set():
            for email in (quitter, next_one):
                subscribers.unsubscribe(other, subscribers.find(other, email)["id"], None, "web")
            done.set()
        return None

    smtp_sink.reply = reply
    slow = settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    # A whole batch of 10 is claimed (and checked) before anyone unsubscribes.
    report = pipeline.send(db, slow, edition, rate=8, concurrency=1, batch_size=10)
    other.close()

    assert done.is_set()
    assert not smtp_sink.to(quitter) and not smtp_sink.to(next_one)
    assert report.sent == 8 and report.failed == 2
    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    assert rows[quitter]["reason"] == rows[next_one]["reason"] == "unsubscribed"


def test_a_second_send_is_refused_while_the_lock_is_held(db, mail_settings, smtp_sink, cli):
    topic = make_topic(db)
    add_people(db, topic, 2)
    edition = make_edition(db, [topic])
    pipeline.acquire_lock(db, edition, "someone-else")  # this live process, fresh heartbeat

    with pytest.raises(pipeline.EditionLocked, match="already being sent"):
        pipeline.send(db, mail_settings, edition)
    result = cli("send", str(edition), "--force", "--yes", env=smtp_env(smtp_sink))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: edition {edition} is already being sent")
    assert not smtp_sink.messages
    assert pipeline.status(db, edition)["pending"] == 0  # nothing was even fixed

    pipeline.release_lock(db, edition, "someone-else")
    assert pipeline.send(db, mail_settings, edition).sent == 2


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("case", ["dead pid on this host", "old heartbeat elsewhere"])
def test_a_crashed_lock_holder_is_taken_over(db, mail_settings, smtp_sink, case):
    topic = make_topic(db)
    add_people(db, topic, 2)
    edition = make_edition(db, [topic])
    if case == "dead pid on this host":
        values = [dead_pid(), socket.gethostname(), now_iso()]
    else:
        values = [os.getpid(), "other-host", "2025-01-01T10:00:00+00:00"]
    db.execute(
        "UPDATE editions SET lock_owner = 'crashed', lock_pid = ?,"
        " lock_host = ?, lock_heartbeat = ? WHERE id = ?",
        [*values, edition],
    )
    report = pipeline.send(db, mail_settings, edition)
    assert report.sent == 2 and len(smtp_sink.messages) == 2


def test_a_live_lock_on_another_host_is_respected(db, mail_settings):
    topic = make_topic(db)
    edition = make_edition(db, [topic])
    db.execute(
        "UPDATE editions SET lock_owner = 'x', lock_pid = 1, lock_host = 'other-host',"
        " lock_heartbeat = ? WHERE id = ?",
        [now_iso(), edition],
    )
    with pytest.raises(pipeline.EditionLocked, match="other-host"):
        pipeline.send(db, mail_settings, edition)


def test_cli_dry_run_confirmation_json_and_status(db, smtp_sink, cli):
    topic = make_topic(db)
    emails = add_people(db, topic, 12)
    edition = make_edition(db, [topic])
    env = smtp_env(smtp_sink)

    dry = cli.ok("send", str(edition), "--dry-run", env=env)
    assert "12 recipients" in dry.stdout
    assert emails[0] in dry.stdout and emails[9] in dry.stdout and emails[10] not in dry.stdout
    assert "and 2 more" in dry.stdout
    dry_json = json.loads(cli.ok("send", str(edition), "--dry-run", "--json", env=env).stdout)
    assert dry_json == {
        "edition": edition,
        "recipients": 12,
        "first": emails[:10],
        "languages": {"fi": 12},
    }

    refused = cli("send", str(edition), "--force", input="n\n", env=env)
    assert refused.exit_code == 1
    assert SUBJECT in refused.stdout and "Vaikuttavuus" in refused.stdout
    assert "Recipients: 12" in refused.stdout
    assert not smtp_sink.messages
    assert cli.ok("status", str(edition), "--json").stdout.count('"pending": 0') == 1

    sent = cli.ok("send", str(edition), "--force", input="y\n", env=env)
    assert "sent 12, failed 0, pending 0 of 12" in sent.stdout
    assert len(smtp_sink.messages) == 12

    status = json.loads(cli.ok("status", str(edition), "--json").stdout)
    assert status == {
        "edition": edition,
        "status": "sent",
        "total": 12,
        "sent": 12,
        "failed": 0,
        "pending": 0,
        "hard_bounces": 0,
        "soft_bounces": 0,
        "complaints": 0,
        "languages": {"fi": {"total": 12, "sent": 12, "failed": 0, "pending": 0}},
    }
    again = json.loads(cli.ok("send", str(edition), "--force", "--yes", "--json", env=env).stdout)
    assert again == status
    assert "sent 12" in cli.ok("status", str(edition)).stdout


def test_cli_test_copy_goes_only_to_the_given_address(db, smtp_sink, cli):
    topic = make_topic(db)
    add_people(db, topic, 3)
    edition = make_edition(db, [topic])
    result = cli.ok(
        "send",
        str(edition),
        "--to",
        "toimitus@example.fi",
        "--to",
        "Tarkastaja@Example.FI",
        env=smtp_env(smtp_sink),
    )
    assert "test copy sent to toimitus@example.fi" in result.stdout
    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == [
        "Tarkastaja@example.fi",
        "toimitus@example.fi",
    ]
    msg = smtp_sink.messages[0].message
    assert str(msg["Subject"]) == f"[TEST] {SUBJECT}"
    text, _html = parts(msg)
    assert placeholders.remaining(text) == []
    assert unquote(msg["List-Unsubscribe"]).count("unsubscribe ") == 1
    assert delivery_rows(db, edition) == []
    assert pipeline.status(db, edition)["status"] == "draft"


def test_cli_errors_are_one_line(db, smtp_sink, cli):
    result = cli("send", "99", "--yes", env=smtp_env(smtp_sink))
    assert result.exit_code == 1 and result.stderr.startswith("error: no edition 99")
    topic = make_topic(db)
    edition = make_edition(db, [topic])
    bad = cli("send", str(edition), "--to", "not an address", env=smtp_env(smtp_sink))
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def lock_owner(db, edition: int) -> str | None:
    return db.execute("SELECT lock_owner FROM editions WHERE id = ?", [edition]).fetchone()[0]


def test_an_edition_without_recipients_is_refused_and_stays_a_draft(
    db, mail_settings, smtp_sink, cli
):
    topic = make_topic(db)
    [left, waiting] = add_people(db, topic, 2)
    subscribers.unsubscribe(db, subscribers.find(db, left)["id"], None, "test")
    waiting_id = subscribers.find(db, waiting)["id"]
    with db.atomic():
        subscribers.set_subscription(db, waiting_id, topic, "unconfirmed", "test")
    edition = make_edition(db, [topic])
    message = (
        f"edition {edition} has no recipients: nobody in topic(s) vaikuttavuus"
        " is active and confirmed"
    )

    with pytest.raises(NewsletterError) as caught:
        pipeline.send(db, mail_settings, edition)
    assert str(caught.value) == message
    for args in (("--yes",), ("--yes", "--json"), ()):
        result = cli("send", str(edition), *args, env=smtp_env(smtp_sink))
        assert result.exit_code == 1
        assert result.stderr == f"error: {message}\n"
        assert "Send now?" not in result.stdout  # refused before asking
    assert pipeline.status(db, edition)["status"] == "draft"
    assert delivery_rows(db, edition) == []
    assert lock_owner(db, edition) is None
    assert not smtp_sink.messages

    # Once someone may be mailed, the same edition goes out as usual.
    with db.atomic():
        subscribers.set_subscription(db, waiting_id, topic, "confirmed", "test")
    assert pipeline.send(db, mail_settings, edition).sent == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--rate", "nan"),
        ("--rate", "inf"),
        ("--rate", "-inf"),
        ("--rate", "-5"),
        ("--rate", "0"),
        ("--concurrency", "0"),
        ("--batch-size", "0"),
        ("--max-errors", "0"),
    ],
)
def test_bad_send_option_values_are_usage_errors(db, smtp_sink, cli, option, value):
    topic = make_topic(db)
    add_people(db, topic, 2)
    edition = make_edition(db, [topic])
    result = cli("send", str(edition), "--force", "--yes", option, value, env=smtp_env(smtp_sink))
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert not smtp_sink.messages
    assert pipeline.status(db, edition)["status"] == "draft"


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -1.0, 0.0])
def test_the_core_refuses_a_rate_that_is_not_a_positive_number(db, mail_settings, rate):
    topic = make_topic(db)
    add_people(db, topic, 1)
    edition = make_edition(db, [topic])
    with pytest.raises(NewsletterError, match="--rate must be a positive number"):
        pipeline.send(db, mail_settings, edition, rate=rate)
    assert delivery_rows(db, edition) == []


def test_plain_http_base_url_is_refused_before_anything_is_sent(db, mail_settings, smtp_sink, cli):
    topic = make_topic(db)
    add_people(db, topic, 3)
    edition = make_edition(db, [topic])
    public_http = mail_settings.with_overrides(base_url="http://uutiskirje.example.fi")
    env = {**smtp_env(smtp_sink), "NEWSLETTER_BASE_URL": "http://uutiskirje.example.fi"}

    with pytest.raises(ConfigError, match="must use https"):
        pipeline.send(db, public_http, edition)
    with pytest.raises(ConfigError, match="must use https"):
        pipeline.send_test(db, public_http, edition, ["toimitus@example.fi"])
    for args in (("--yes",), ("--to", "toimitus@example.fi"), ("--dry-run",)):
        result = cli("send", str(edition), *args, env=env)
        assert result.exit_code == 1
        assert result.stderr.startswith("error: base_url 'http://uutiskirje.example.fi'")
        assert len(result.stderr.splitlines()) == 1
    assert not smtp_sink.messages
    assert pipeline.status(db, edition)["status"] == "draft"
    assert delivery_rows(db, edition) == []
    assert lock_owner(db, edition) is None


def test_plain_http_on_loopback_sends_with_a_warning(db, smtp_sink, cli):
    topic = make_topic(db)
    [email] = add_people(db, topic, 1)
    edition = make_edition(db, [topic])
    env = {**smtp_env(smtp_sink), "NEWSLETTER_BASE_URL": "http://127.0.0.1:8080"}

    test_copy = cli.ok("send", str(edition), "--to", "toimitus@example.fi", env=env)
    assert "warning: base_url http://127.0.0.1:8080 is plain http on loopback" in test_copy.stderr
    result = cli.ok("send", str(edition), "--force", "--yes", env=env)
    assert "warning: base_url http://127.0.0.1:8080 is plain http on loopback" in result.stderr
    text, _html = parts(smtp_sink.to(email)[0].message)
    assert "Peru tilaus: http://127.0.0.1:8080/u/" in text


def test_test_copies_speak_json(db, smtp_sink, cli):
    edition = make_edition(db, [make_topic(db)])
    env = smtp_env(smtp_sink)
    args = ("send", str(edition), "--to", "Toimitus@Example.FI", "--to", "b@example.fi", "--json")
    sent = json.loads(cli.ok(*args, env=env).stdout)
    received = {m.rcpt_tos[0]: m.message["Message-ID"] for m in smtp_sink.messages}
    assert sent == [
        {"to": "Toimitus@example.fi", "message_id": received["Toimitus@example.fi"]},
        {"to": "b@example.fi", "message_id": received["b@example.fi"]},
    ]
    planned = json.loads(cli.ok(*args, "--dry-run", env=env).stdout)
    assert planned == [
        {"to": "Toimitus@example.fi", "message_id": None},
        {"to": "b@example.fi", "message_id": None},
    ]
    assert len(smtp_sink.messages) == 2


def test_a_send_whose_lock_was_taken_over_stops(db, settings, smtp_sink, monkeypatch):
    topic = make_topic(db)
    add_people(db, topic, 30)
    edition = make_edition(db, [topic])
    monkeypatch.setattr(pipeline.lock, "HEARTBEAT_EVERY", 0.05)
    other = open_db(settings.db)

    def reply(envelope):
        if len(smtp_sink.messages) == 3:  # another send decided this one was dead
            other.execute("UPDATE editions SET lock_owner = 'newer-send' WHERE id = ?", [edition])
            other.conn.commit()
        return None

    smtp_sink.reply = reply
    mail = settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    report = pipeline.send(db, mail, edition, rate=20, concurrency=1)
    other.close()

    assert report.outcome == "lock lost" and "took over the lock" in report.message
    assert report.status == "sending"  # the newer send's state is left alone
    assert 4 <= report.sent < 10 and report.pending == 30 - report.sent
    assert len(smtp_sink.messages) == report.sent
    # The newer send's lock is left alone.
    assert db.execute("SELECT lock_owner FROM editions").fetchone()[0] == "newer-send"


def test_dkim_signatures_survive_the_trip_through_smtp(db, mail_settings, smtp_sink, tmp_path):
    need_tool("openssl", "it makes the DKIM key")
    import dkim

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"news._domainkey.example.fi." else b""

    topic = make_topic(db)
    add_people(db, topic, 3)
    # Lines that start with a dot are dot-stuffed on the wire and must arrive unchanged.
    html = HTML.replace("<p>Hei", ".<p>Hei").replace("</body>", "\n.\n..</body>")
    edition = make_edition(db, [topic], html=html, text=TEXT + "\n.\n.piste alussa\n")
    signed = mail_settings.with_overrides(
        dkim_selector="news", dkim_domain="example.fi", dkim_key_file=key
    )
    pipeline.send(db, signed, edition)

    assert len(smtp_sink.messages) == 3
    for received in smtp_sink.messages:
        assert received.data.startswith(b"DKIM-Signature:")
        assert dkim.verify(received.data, dnsfunc=dns)
        text, _html = parts(received.message)
        assert "\n.\n.piste alussa\n" in text.replace("\r\n", "\n")


def test_cli_dry_run_with_to_sends_no_test_copy(db, smtp_sink, cli):
    edition = make_edition(db, [make_topic(db)])
    result = cli.ok(
        "send", str(edition), "--to", "Toimitus@Example.FI", "--dry-run", env=smtp_env(smtp_sink)
    )
    assert result.stdout.strip() == "a test copy would go to Toimitus@example.fi"
    assert not smtp_sink.messages
    bad = cli("send", str(edition), "--to", "not an address", "--dry-run")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")


def test_a_slow_rate_keeps_the_lock_fresh_while_waiting(db, settings, smtp_sink, monkeypatch):
    topic = make_topic(db)
    add_people(db, topic, 2)
    edition = make_edition(db, [topic])
    monkeypatch.setattr(pipeline.lock, "HEARTBEAT_EVERY", 0.05)
    monkeypatch.setattr(pipeline.lock, "LOCK_STALE_AFTER", 1.5)
    other = open_db(settings.db)  # a second `send` started by someone else
    stop, taken = threading.Event(), []

    def intruder() -> None:
        while not stop.wait(0.1):
            with contextlib.suppress(pipeline.EditionLocked):
                pipeline.acquire_lock(other, edition, "intruder")
                taken.append(now_iso())

    thread = threading.Thread(target=intruder)
    thread.start()
    mail = settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    try:
        # 0.3 messages a second: the second message waits over 3 s for the rate limit.
        report = pipeline.send(db, mail, edition, rate=0.3, concurrency=1)
    finally:
        stop.set()
        thread.join()
        other.close()

    assert taken == []
    assert (report.outcome, report.sent) == ("done", 2)


def test_results_wait_for_a_writer_that_holds_the_database(db, settings, smtp_sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 5)
    edition = make_edition(db, [topic])
    # A long import elsewhere: it holds the write lock longer than the busy timeout.
    db.execute("PRAGMA busy_timeout = 50")
    holder = open_db(settings.db)
    released = threading.Event()

    def release() -> None:
        holder.execute("COMMIT")
        released.set()

    def reply(envelope):
        if envelope.rcpt_tos == [emails[1]] and not holder.conn.in_transaction:
            holder.execute("BEGIN IMMEDIATE")  # before the server's 250 reaches the sender
            threading.Timer(1.0, release).start()
        return None

    smtp_sink.reply = reply
    mail = settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    try:
        report = pipeline.send(db, mail, edition, concurrency=1)
    finally:
        released.wait(5)
        holder.close()

    assert released.is_set()
    assert (report.status, report.sent, report.pending) == ("sent", 5, 0)
    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == emails


def test_cli_progress_bar_shows_counts_and_rate(db, smtp_sink, cli, monkeypatch):
    from newsletter.cli import send as send_command

    topic = make_topic(db)
    add_people(db, topic, 4)
    edition = make_edition(db, [topic])
    monkeypatch.setattr(send_command, "stderr_is_tty", lambda: True)
    result = cli.ok("send", str(edition), "--force", "--yes", env=smtp_env(smtp_sink))
    assert "sending" in result.stderr and "4/4" in result.stderr
    assert "sent 4 failed 0" in result.stderr and "msg/s" in result.stderr


def test_no_test_copy_goes_to_an_erased_bounced_or_blocklisted_address(db, smtp_sink, cli):
    topic = make_topic(db)
    erased, blocked, bounced, fine = add_people(db, topic, 4)
    subscribers.erase(db, erased, "test")
    subscribers.set_status(db, subscribers.find(db, blocked)["id"], "blocklisted", "test")
    subscribers.set_status(db, subscribers.find(db, bounced)["id"], "bounced", "test")
    edition = make_edition(db, [topic])
    env = smtp_env(smtp_sink)
    for address, why in ((erased, "erased"), (blocked, "blocklisted"), (bounced, "bounced")):
        result = cli("send", str(edition), "--to", fine, "--to", address.upper(), env=env)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: {address.upper().split('@')[0]}")
        assert f"is {why} and is never mailed" in result.stderr
    assert not smtp_sink.messages
    cli.ok("send", str(edition), "--to", fine, env=env)
    assert [m.rcpt_tos for m in smtp_sink.messages] == [[fine]]


def test_no_test_copy_goes_to_anyone_who_unsubscribed_or_complained(db, smtp_sink, cli):
    from newsletter.delivery.bounces import record

    topic = make_topic(db)
    other = make_topic(db, "kulttuuri", "Kulttuuri")
    left, complained, left_topic, elsewhere, fine = add_people(db, topic, 5)
    subscribers.unsubscribe(db, subscribers.find(db, left)["id"], None, "one-click")
    record.complaint(db, subscribers.find(db, complained)["id"], "test", {})
    # Unsubscribed from this edition's topic, still reading another one.
    subscribers.add(db, left_topic, topic_ids=[other], status="confirmed")
    subscribers.unsubscribe(db, subscribers.find(db, left_topic)["id"], topic, "one-click")
    # Left another topic but still reads this one: they get the copy.
    subscribers.unsubscribe(db, subscribers.find(db, elsewhere)["id"], other, "one-click")
    edition = make_edition(db, [topic])
    env = smtp_env(smtp_sink)
    refused = ((left, "unsubscribed"), (complained, "complained"), (left_topic, "unsubscribed"))
    for address, why in refused:
        for dry_run in ((), ("--dry-run",)):
            result = cli("send", str(edition), "--to", address, *dry_run, env=env)
            assert result.exit_code == 1, result.output
            assert result.stderr.startswith(
                f"error: {address} is {why} and is never mailed; no test copy was sent"
            )
    assert not smtp_sink.messages
    staff = "staff@example.fi"  # nobody on the list: a copy to the team's own address
    cli.ok("send", str(edition), "--to", elsewhere, "--to", fine, "--to", staff, env=env)
    delivered = sorted(r for m in smtp_sink.messages for r in m.rcpt_tos)
    assert delivered == sorted([elsewhere, fine, staff])
