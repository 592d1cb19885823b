"""Real relays' failures against fault-injecting SMTP servers: a misconfigured relay, then
a fixed one; greylisting; one refused connection among several; a drip-feeding server."""

from __future__ import annotations

import json
import signal
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from send_helpers import (
    FaultySink,
    add_people,
    delivery_rows,
    faulty_sink,
    make_edition,
    make_topic,
)
from test_send_kill import start_send
from test_smtp_deadline import RawServer, drip_after_data

from newsletter.audience import subscribers
from newsletter.delivery import pipeline


@pytest.fixture
def sink():
    with faulty_sink() as server:
        yield server


def _env(server) -> dict[str, str]:
    return {"NEWSLETTER_SMTP_HOST": server.host, "NEWSLETTER_SMTP_PORT": str(server.port)}


def test_relay_refusal_keeps_everyone_pending_until_the_relay_is_fixed(db, sink, cli):
    topic = make_topic(db)
    emails = add_people(db, topic, 40)
    edition = make_edition(db, [topic])
    sink.rcpt_fault = lambda address: f"554 5.7.1 <{address}>: Relay access denied"

    result = cli("send", str(edition), "--force", "--yes", "--json", env=_env(sink))

    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the SMTP relay refused 3 recipients in a row")
    assert "Relay access denied" in line and "not the addresses" in line
    assert f"`newsletter send {edition}` again" in line
    counts = json.loads(result.stdout)
    assert (counts["status"], counts["sent"], counts["failed"], counts["pending"]) == (
        "paused",
        0,
        0,
        40,
    )
    assert pipeline.status(db, edition)["status"] != "sent"
    assert all(subscribers.find(db, e)["status"] == "active" for e in emails)

    sink.rcpt_fault = None  # the relay is fixed
    fixed = cli.ok("send", str(edition), "--force", "--yes", "--json", env=_env(sink))
    assert json.loads(fixed.stdout)["sent"] == 40
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == emails
    assert pipeline.status(db, edition)["status"] == "sent"


def test_retry_failed_requeues_only_failures_not_about_the_address(db, settings, sink, cli):
    topic = make_topic(db)
    emails = add_people(db, topic, 8)
    edition = make_edition(db, [topic])
    unknown, spam_a, spam_b, full = emails[1], emails[3], emails[5], emails[6]
    # Among deliveries that get through: a dead address, two content refusals (different
    # messages, so not the relay), and a mailbox that stays full past every retry.
    sink.rcpt_fault = lambda address: "550 5.1.1 no such user" if address == unknown else None
    refusals = {spam_a: "554 5.6.0 message refused", spam_b: "550 5.7.350 content blocked"}
    sink.fault = lambda server, env: (
        refusals.get(env.rcpt_tos[0])
        or ("452 4.2.2 mailbox full" if env.rcpt_tos[0] == full else None)
    )
    mail = settings.with_overrides(smtp_host=sink.host, smtp_port=sink.port)
    first = pipeline.send(db, mail, edition, max_errors=100)
    assert (first.status, first.sent, first.failed) == ("sent", 4, 4)
    reasons = {r["email"]: r["reason"] for r in delivery_rows(db, edition)}
    assert reasons[unknown] == "hard bounce"
    assert reasons[spam_a] == reasons[spam_b] == "rejected"
    assert reasons[full].startswith("gave up after")

    sink.rcpt_fault = sink.fault = None
    dry = cli.ok("send", str(edition), "--retry-failed", "--dry-run", env=_env(sink))
    assert "3 recipients would be mailed" in dry.stdout
    again = pipeline.send(db, mail, edition, retry_failed=True)
    assert (again.sent_now, again.sent, again.failed) == (3, 7, 1)
    assert not sink.to(unknown)[1:]  # the dead address was never tried again
    assert subscribers.find(db, unknown)["status"] == "bounced"


def test_greylisting_finishes_in_one_send(db, settings, sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 30)
    edition = make_edition(db, [topic])
    sink.fault = lambda server, env: (
        "451 4.7.1 Greylisted, please try again later"
        if sink.attempts[env.rcpt_tos[0]] == 1
        else None
    )
    mail = settings.with_overrides(smtp_host=sink.host, smtp_port=sink.port)
    # Every first try fails: far more errors in a row than --max-errors, yet no pause.
    report = pipeline.send(db, mail, edition, concurrency=3, max_errors=5)
    assert (report.status, report.sent, report.failed, report.pending) == ("sent", 30, 0, 0)
    assert all(sink.attempts[e] == 2 for e in emails)
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == emails


class TurnsOneAway(Controller):
    """An aiosmtpd server that answers its second connection ``421 Too many connections``
    before the greeting and closes it, as providers limiting connections per client do."""

    def __init__(self, handler, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.connections = 0

    def factory(self):
        controller = self

        class Limited(SMTP):
            def connection_made(self, transport) -> None:
                controller.connections += 1
                if controller.connections == 2:
                    transport.write(b"421 4.7.0 Too many connections, try again later\r\n")
                    transport.close()
                    return
                super().connection_made(transport)

            def connection_lost(self, exc) -> None:
                if getattr(self, "transport", None) is not None:
                    super().connection_lost(exc)

        return Limited(self.handler, hostname=self.hostname)


def test_one_refused_connection_lowers_concurrency_instead_of_stopping(db, settings):
    server = FaultySink()
    server.controller = TurnsOneAway(server, hostname=server.host, port=server.port)
    server.controller.start()
    server.controller.connections = 0  # start() made one of its own to see the server up
    try:
        topic = make_topic(db)
        # Enough people that every lane gets slices whatever the token bucket holds.
        emails = add_people(db, topic, 200)
        edition = make_edition(db, [topic])
        mail = settings.with_overrides(smtp_host=server.host, smtp_port=server.port)
        report = pipeline.send(db, mail, edition, concurrency=4)
    finally:
        server.controller.stop()
    assert (report.status, report.sent, report.pending) == ("sent", 200, 0)
    # Four opened, the second turned away and not opened again: three carried the send.
    assert server.controller.connections == 4
    assert sorted(r for m in server.messages for r in m.rcpt_tos) == emails
    rows = delivery_rows(db, edition)
    assert all(row["attempts"] == 1 for row in rows)  # the refusal used up nobody's retries


def test_a_drip_feeding_server_ends_in_a_clear_error_with_rows_pending(db, settings, cli):
    topic = make_topic(db)
    add_people(db, topic, 4)
    edition = make_edition(db, [topic])
    server = RawServer(drip_after_data)
    try:
        env = {
            "NEWSLETTER_SMTP_HOST": "127.0.0.1",
            "NEWSLETTER_SMTP_PORT": str(server.port),
            "NEWSLETTER_SMTP_DEADLINE": "1",
        }
        result = cli("send", str(edition), "--force", "--yes", env=env)
    finally:
        server.close()
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "did not finish within 1 s (smtp.deadline)" in line and "4 still pending" in line
    assert pipeline.status(db, edition)["pending"] == 4
    assert [r["attempts"] for r in delivery_rows(db, edition)] == [0] * 4


def test_ctrl_c_stops_a_send_stuck_on_a_drip_feeding_server(workdir, db, settings):
    topic = make_topic(db)
    add_people(db, topic, 4)
    edition = make_edition(db, [topic])
    server = RawServer(drip_after_data)
    server.host = "127.0.0.1"
    try:
        process = start_send(workdir, server, edition)
        # Connected, its handler for Ctrl-C in place, and waiting on the drip.
        assert server.accepted.wait(60)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=30)
        except Exception:
            process.kill()
            raise
    finally:
        server.close()
    assert process.returncode == 1
    assert "still pending" in stderr
    assert pipeline.status(db, edition)["pending"] == 4


def test_a_send_that_reached_nobody_is_never_called_sent(db, sink, cli):
    topic = make_topic(db)
    emails = add_people(db, topic, 6)
    edition = make_edition(db, [topic])
    sink.fault = lambda server, env: "452 4.3.1 insufficient system storage"
    env = {**_env(sink), "NEWSLETTER_MAX_RETRIES": "2"}

    result = cli("send", str(edition), "--force", "--yes", "--max-errors", "100", "--json", env=env)

    assert result.exit_code == 1
    counts = json.loads(result.stdout)
    assert (counts["status"], counts["sent"], counts["failed"], counts["pending"]) == (
        "paused",
        0,
        6,
        0,
    )
    [line] = result.stderr.strip().splitlines()
    assert "nobody was reached" in line and f"newsletter send {edition} --retry-failed" in line
    assert cli("status", str(edition), "--json").stdout.count('"status": "paused"') == 1

    sink.fault = None
    again = cli.ok("send", str(edition), "--force", "--yes", "--retry-failed", "--json", env=env)
    assert json.loads(again.stdout)["sent"] == 6
    assert pipeline.status(db, edition)["status"] == "sent"
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == emails
