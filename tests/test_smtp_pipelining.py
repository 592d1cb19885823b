"""PIPELINING (RFC 2920): MAIL, RCPT and DATA in one round trip, every reply matched to its
command, against a server that holds its replies until the group is complete (so nothing
gets through a client that waits command by command) and against Postfix's smtp-sink."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from conftest import free_port
from pipelining_server import PipeliningServer
from send_helpers import TEXT, add_people, delivery_rows, make_edition, make_topic, parts

from newsletter.delivery import pipeline
from newsletter.mail import smtp

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


@pytest.fixture
def server():
    instance = PipeliningServer()
    instance.start()
    yield instance
    instance.stop()


def on(settings, server, **changes):
    # A client that did not pipeline would wait for a held reply until this timeout.
    return settings.with_overrides(
        smtp_host=server.host, smtp_port=server.port, smtp_timeout=5.0, **changes
    )


def test_a_pipelined_send_delivers_each_message_intact(db, settings, server):
    topic = make_topic(db)
    emails = add_people(db, topic, 12)
    text = TEXT + "\n.\n.piste rivin alussa\n..kaksi\n"
    edition = make_edition(db, [topic], text=text)

    report = pipeline.send(db, on(settings, server), edition, concurrency=2, batch_size=5)

    assert (report.outcome, report.sent, report.pending) == ("done", 12, 0)
    assert sorted(m.recipient for m in server.messages) == emails
    assert {m.sender for m in server.messages} == {"uutiskirje@example.fi"}
    for received in server.messages:
        message = message_from_bytes(received.data, policy=policy.default)
        plain, _html = parts(message)
        assert "\n.\n.piste rivin alussa\n..kaksi\n" in plain.replace("\r\n", "\n")
        assert message["To"].addresses[0].addr_spec == received.recipient
    replies = {row["last_reply"] for row in delivery_rows(db, edition)}
    assert replies == {"250 2.0.0 queued"}


def test_one_refused_recipient_mid_send_keeps_the_session_in_step(db, settings, server):
    topic = make_topic(db)
    emails = add_people(db, topic, 9)
    greylisted, unknown, full = emails[2], emails[4], emails[6]
    tries: Counter[str] = Counter()

    def rcpt_reply(address):
        tries[address] += 1
        if address == greylisted and tries[address] == 1:
            return "451 4.7.1 greylisted, try again later"
        if address == unknown:
            return "550 5.1.1 no such user"
        if address == full:
            return "552 5.2.2 mailbox full"
        return None

    server.rcpt_reply = rcpt_reply
    edition = make_edition(db, [topic])
    report = pipeline.send(db, on(settings, server), edition, concurrency=1, max_errors=50)

    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    assert (report.sent, report.failed, report.pending) == (7, 2, 0)
    assert rows[greylisted]["status"] == "sent" and rows[greylisted]["attempts"] == 2
    assert (rows[unknown]["status"], rows[unknown]["reason"]) == ("failed", "hard bounce")
    assert rows[unknown]["last_reply"] == "550 5.1.1 no such user"
    assert (rows[full]["status"], rows[full]["reason"]) == ("failed", "rejected")
    # Each message went to its own recipient: no reply was taken for another command's.
    received = Counter(m.recipient for m in server.messages)
    assert received == Counter(e for e in emails if e not in (unknown, full))
    for message in server.messages:
        parsed = message_from_bytes(message.data, policy=policy.default)
        assert parsed["To"].addresses[0].addr_spec == message.recipient
    assert server.sessions == 1  # a refused recipient does not cost the connection


def test_a_server_that_accepts_data_after_refusing_everyone(db, settings, server):
    topic = make_topic(db)
    emails = add_people(db, topic, 4)
    server.accept_data_without_recipients = True
    server.rcpt_reply = lambda address: "550 5.1.1 unknown" if address == emails[1] else None
    edition = make_edition(db, [topic])
    report = pipeline.send(db, on(settings, server), edition, concurrency=1)

    assert (report.sent, report.failed) == (3, 1)
    assert sorted(m.recipient for m in server.messages) == [emails[0], *emails[2:]]
    assert server.sessions == 1


def test_a_connection_dropped_mid_group_leaves_the_row_pending_for_a_retry(db, settings, server):
    topic = make_topic(db)
    emails = add_people(db, topic, 6)
    tries: Counter[str] = Counter()

    def rcpt_reply(address):
        tries[address] += 1
        return "drop" if address == emails[3] and tries[address] == 1 else None

    def data_reply(address):
        # The message arrived, but the connection ends before the final 250.
        tries["data " + address] += 1
        return "drop" if address == emails[1] and tries["data " + address] == 1 else None

    server.rcpt_reply = rcpt_reply
    server.data_reply = data_reply
    edition = make_edition(db, [topic])
    report = pipeline.send(db, on(settings, server), edition, concurrency=1, max_errors=50)

    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    assert (report.sent, report.pending) == (6, 0)
    assert rows[emails[3]]["attempts"] == 2 and rows[emails[1]]["attempts"] == 2
    assert sorted(m.recipient for m in server.messages) == emails
    assert server.sessions == 3  # two drops, two reconnects


def test_a_421_inside_a_group_is_temporary_and_closes_the_session(settings, server):
    server.rcpt_reply = lambda address: "421 4.3.2 closing"
    with smtp.Connection(on(settings, server)) as connection:
        with pytest.raises(smtp.TemporaryFailure, match=r"421 4\.3\.2 closing"):
            connection.send("uutiskirje@example.fi", "a@example.org", b"Subject: x\r\n\r\nx\r\n")
        assert connection._smtp is None


def test_a_refused_sender_in_a_group_is_matched_to_mail_from(settings, server):
    server.mail_reply = lambda address: "550 5.7.1 sender not allowed"
    with smtp.Connection(on(settings, server)) as connection:
        with pytest.raises(smtp.ConnectionFailed, match=r"refused the sender .* 550 5\.7\.1"):
            connection.send("uutiskirje@example.fi", "a@example.org", b"x\r\n")
        # RCPT and DATA were refused too (503); once their replies are read and the session
        # reset, the next message is matched to its own replies.
        server.mail_reply = lambda address: None
        reply = connection.send("uutiskirje@example.fi", "b@example.org", b"y\r\n")
    assert reply == "250 2.0.0 queued"
    assert [m.recipient for m in server.messages] == ["b@example.org"]
    assert server.sessions == 1


def test_without_pipelining_on_offer_commands_go_one_by_one(db, settings):
    plain = PipeliningServer(offer_pipelining=False, hold_replies=False)
    plain.start()
    try:
        topic = make_topic(db)
        add_people(db, topic, 5)
        edition = make_edition(db, [topic])
        report = pipeline.send(db, on(settings, plain), edition, concurrency=1)
    finally:
        plain.stop()
    assert report.sent == 5 and len(plain.messages) == 5
    assert plain.commands_waiting == [0] * 5  # nothing was written ahead of a reply


def test_pipelined_commands_wait_behind_mail_from(db, settings, server):
    topic = make_topic(db)
    add_people(db, topic, 3)
    report = pipeline.send(db, on(settings, server), make_edition(db, [topic]), concurrency=1)
    assert report.sent == 3
    assert all(waiting >= 1 for waiting in server.commands_waiting)


@pytest.mark.parametrize(
    "body",
    [b"", b".", b"a\r\n.\r\nb", b"..\r\n.\r\n", b"x\r\n.", b"\r\n.\r\n.\r\n", b"no dots\r\n"],
)
def test_dot_stuffing_is_undone_exactly_by_the_receiver(body):
    stuffed = smtp.dot_stuffed(body)
    assert stuffed.endswith(b"\r\n")
    lines = stuffed[:-2].split(b"\r\n")
    assert all(not line.startswith(b".") or line.startswith(b"..") for line in lines)
    unstuffed = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    assert unstuffed == (body[:-2] if body.endswith(b"\r\n") else body)


# --- Postfix's smtp-sink ---------------------------------------------------------------


def smtp_sink_available() -> bool:
    if Path(SMTP_SINK).exists():
        return True
    if os.environ.get("CI") == "true":
        pytest.fail("smtp-sink is missing: run scripts/ensure-postfix.sh")
    pytest.skip("needs Postfix's smtp-sink (scripts/ensure-postfix.sh)")
    return False


@pytest.fixture
def postfix_sink():
    smtp_sink_available()
    # Started as root, smtp-sink drops to an unprivileged user, who cannot enter pytest's
    # private tmp_path: the dumps go to a folder of their own.
    dumps = Path(tempfile.mkdtemp(prefix="smtp-sink-"))
    dumps.chmod(0o777)
    port = free_port()
    command = [SMTP_SINK, "-d", f"{dumps}/%Y%m%d%H%M%S.", f"127.0.0.1:{port}", "32"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not _listening(port):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr
        time.sleep(0.02)
    try:
        yield port, dumps
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(dumps, ignore_errors=True)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_send_into_postfix_smtp_sink(db, settings, postfix_sink):
    port, dumps = postfix_sink
    topic = make_topic(db)
    emails = add_people(db, topic, 40)
    edition = make_edition(db, [topic], text=TEXT + "\n.alkaa pisteellä\n")
    mail = settings.with_overrides(smtp_host="127.0.0.1", smtp_port=port)
    report = pipeline.send(db, mail, edition, concurrency=2, batch_size=7)

    assert (report.outcome, report.sent) == ("done", 40)
    deadline = time.monotonic() + 10
    while len(list(dumps.iterdir())) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    recipients = []
    for dump in dumps.iterdir():
        # smtp-sink writes the envelope as X-*-Args lines, then the data as it came.
        data = dump.read_bytes()
        rcpt = next(line for line in data.split(b"\n") if line.startswith(b"X-Rcpt-Args:"))
        recipients.append(rcpt.split(b"<", 1)[1].split(b">", 1)[0].decode())
        # smtp-sink undoes dot-stuffing: the line arrives intact only if it was stuffed.
        assert b"\n.alkaa pisteell=C3=A4\n" in data
    assert sorted(recipients) == emails
