"""The send loop: all connections in one thread, each message's final dot held back until
the result before it is written, so a server never holds more accepted messages without
their result in the database than there are connections; and the limits of every step."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from pipelining_server import PipeliningServer
from send_helpers import add_people, delivery_rows, make_edition, make_topic
from test_smtp_deadline import RawServer, _lines, drip_after_data

from newsletter.audience import subscribers
from newsletter.delivery import pipeline
from newsletter.delivery.pipeline import planning
from newsletter.delivery.pipeline.batches import pending_jobs
from newsletter.delivery.pipeline.lanes import Lanes, Letters
from newsletter.mail import smtp
from newsletter.store.db import open_db, token_key


@pytest.fixture
def server():
    instance = PipeliningServer(hold_replies=False)
    instance.start()
    yield instance
    instance.stop()


def on(settings, port, **changes):
    values = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_timeout": 5.0, **changes}
    return settings.with_overrides(**values)


def lanes_for(db, settings, edition_id: int) -> tuple[Lanes, list]:
    edition = planning.load_edition(db, edition_id)
    planning.start(db, edition, include_new=False)
    template = planning.edition_messages(db, settings, edition)
    lanes = Lanes(settings, template, token_key(db, settings.secret), edition_id)
    return lanes, pending_jobs(db, edition_id, 0, 100)


def one_lane(db, settings, port: int, people: int) -> tuple[Lanes, list]:
    """Lanes for a new edition to ``people`` confirmed readers, with one lane hired; the
    jobs of the whole delivery log."""
    topic = make_topic(db)
    add_people(db, topic, people)
    lanes, jobs = lanes_for(db, on(settings, port), make_edition(db, [topic]))
    lanes.hire(1)
    return lanes, jobs


def poll_until(lanes: Lanes, wanted: int, seconds: float = 10.0) -> list:
    found: list = []
    end = time.monotonic() + seconds
    while len(found) < wanted and time.monotonic() < end:
        found += lanes.poll(0.2)
    return found


@pytest.mark.parametrize("pipelining", [True, False])
def test_the_next_message_waits_for_its_dot_until_the_result_before_is_written(
    db, settings, server, pipelining
):
    server.offer_pipelining = pipelining
    lanes, jobs = one_lane(db, settings, server.port, 3)
    lane = lanes.lanes[0]
    try:
        lanes.hand(lane, jobs)
        first = poll_until(lanes, 1)
        # The first result is out but not written: the second message is all on the wire
        # except its dot, and the server has accepted only the first.
        assert [r.job.delivery_id for r in first] == [jobs[0].delivery_id]
        assert first[0].reply.startswith("250")
        assert [job.delivery_id for job in lane.slice] == [jobs[2].delivery_id]
        assert lane.session.awaiting_dot
        time.sleep(0.3)
        assert [m.recipient for m in server.messages] == [jobs[0].email]

        lanes.proceed(True)  # written: the dot goes, the third message waits in turn
        second = poll_until(lanes, 1)
        assert [r.job.delivery_id for r in second] == [jobs[1].delivery_id]
        assert len(server.messages) == 2

        lanes.proceed(False)  # the send stops: the held third message is dropped
        third = poll_until(lanes, 1)
        assert [(r.job.delivery_id, r.skipped) for r in third] == [(jobs[2].delivery_id, True)]
        time.sleep(0.3)
        assert [m.recipient for m in server.messages] == [j.email for j in jobs[:2]]
    finally:
        lanes.close()


def test_a_server_never_holds_more_unrecorded_messages_than_connections(db, settings, server):
    topic = make_topic(db)
    add_people(db, topic, 60)
    edition = make_edition(db, [topic])
    watcher = sqlite3.connect(str(settings.db), check_same_thread=False)
    behind: list[int] = []

    def data_reply(address: str) -> None:
        # At each final dot: messages the server accepted before this one, less the rows the
        # database already shows as sent. Only the other connections' can be missing.
        sent = watcher.execute("SELECT count(*) FROM deliveries WHERE status = 'sent'").fetchone()
        behind.append(len(server.messages) - sent[0])
        return None

    server.data_reply = data_reply
    report = pipeline.send(db, on(settings, server.port), edition, concurrency=3, batch_size=10)
    watcher.close()

    assert (report.sent, report.pending) == (60, 0)
    assert len(behind) == 60
    assert max(behind) <= 3 - 1  # this connection's own previous message is always written
    assert len(server.messages) == 60


def test_a_transaction_past_its_deadline_stops_the_send_with_the_row_pending(db, settings):
    server = RawServer(drip_after_data)
    try:
        topic = make_topic(db)
        add_people(db, topic, 2)
        edition = make_edition(db, [topic])
        started = time.monotonic()
        with pytest.raises(smtp.ConnectionFailed, match=r"within 1 s \(smtp\.deadline\)"):
            pipeline.send(db, on(settings, server.port, smtp_deadline=1.0), edition)
        assert time.monotonic() - started < 15
    finally:
        server.close()
    rows = delivery_rows(db, edition)
    assert {row["status"] for row in rows} == {"pending"}


def test_replies_without_end_are_cut_at_the_cap(db, settings):
    def endless_after_mail(conn, stop):
        conn.sendall(b"220 ok\r\n")
        conn.recv(1024)
        conn.sendall(b"250-big.example\r\n250 PIPELINING\r\n")
        conn.recv(1024)
        while not stop.is_set():
            conn.sendall(b"250-" + b"X" * 1000 + b"\r\n")

    server = RawServer(endless_after_mail)
    try:
        topic = make_topic(db)
        add_people(db, topic, 1)
        edition = make_edition(db, [topic])
        wrong = on(settings, server.port, smtp_max_reply=8192)
        with pytest.raises(smtp.ConnectionFailed, match=r"more than 8192 octets"):
            pipeline.send(db, wrong, edition)
    finally:
        server.close()
    assert {row["status"] for row in delivery_rows(db, edition)} == {"pending"}


def early_verdict(conn, stop):
    """Says 250 to each message as soon as its body starts, before its final dot."""
    conn.sendall(b"220 ok\r\n")
    in_data = False
    for line in _lines(conn):
        if in_data:
            in_data = line != b"."
            if line.startswith(b"Subject:"):
                conn.sendall(b"250 2.0.0 too early\r\n")
            continue
        verb = line[:4].upper()
        if verb == b"EHLO":
            conn.sendall(b"250-early.example\r\n250 PIPELINING\r\n")
        elif verb == b"DATA":
            in_data = True
            conn.sendall(b"354 go on\r\n")
        elif verb == b"QUIT":
            return
        else:
            conn.sendall(b"250 ok\r\n")


def test_a_reply_while_the_dot_is_held_is_not_a_delivery(db, settings):
    server = RawServer(early_verdict)
    try:
        lanes, jobs = one_lane(db, settings, server.port, 2)
        try:
            lanes.hand(lanes.lanes[0], jobs)
            results = poll_until(lanes, 2)
        finally:
            lanes.close()
    finally:
        server.close()
    # The first message went whole, with its dot (the server's early word aside); the
    # second was held at its dot when the 250 came: that 250 cannot be its delivery.
    second = next(r for r in results if r.job.delivery_id == jobs[1].delivery_id)
    assert not second.reply and isinstance(second.error, smtp.TemporaryFailure)


def test_the_wal_stays_bounded_however_long_the_send(db, settings, server, monkeypatch):
    # A send commits thousands of times; its checkpoints must still reset the WAL now and
    # then (a checkpointing thread aside never could: the file grew with the send).
    from newsletter.store import db as store_db

    monkeypatch.setattr(store_db, "SPACED_CHECKPOINT_PAGES", 40)
    topic = make_topic(db)
    add_people(db, topic, 400)
    edition = make_edition(db, [topic])
    planning.start(db, planning.load_edition(db, edition), include_new=False)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file keeps its longest size: from 0
    wal = settings.db.with_name(settings.db.name + "-wal")
    during: list[int] = []
    autocheckpoint: list[int] = []

    def progress(report) -> None:
        during.append(wal.stat().st_size)
        autocheckpoint.append(db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

    report = pipeline.send(
        db, on(settings, server.port), edition, concurrency=3, batch_size=50, progress=progress
    )

    assert (report.sent, report.pending) == (400, 0)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    frames = max(during) // (page + 24)
    # Every commit writes frames, 400 messages write several hundred: without a reset the
    # file would hold them all. With one it holds the spacing and the commit that crossed it.
    assert frames <= 40 + 60, frames
    assert set(autocheckpoint) == {40}
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # put back after


def test_the_next_envelope_goes_in_the_write_of_the_released_dot(db, settings, server):
    topic = make_topic(db)
    emails = add_people(db, topic, 6)
    edition = make_edition(db, [topic])
    report = pipeline.send(db, on(settings, server.port), edition, concurrency=1)

    assert (report.sent, report.pending) == (6, 0)
    assert [m.recipient for m in server.messages] == emails
    # The first message's dot is not held; each held one after it carries the next
    # message's MAIL, RCPT and DATA; the last has nobody behind it.
    behind = [bytes(chunk) for chunk in server.behind_dot]
    assert behind[0] == b"" and behind[-1] == b""
    for chunk, email in zip(behind[1:-1], emails[2:], strict=True):
        assert chunk.startswith(b"MAIL FROM:<") and chunk.endswith(b"\r\nDATA\r\n")
        assert f"RCPT TO:<{email}>".encode() in chunk


def test_a_refused_message_with_the_next_one_behind_its_dot(db, settings, server):
    # No RSET after the refusal: it would have been the text of the message behind it.
    topic = make_topic(db)
    emails = add_people(db, topic, 6)
    edition = make_edition(db, [topic])
    spam = "554 5.7.1 looks like spam"
    server.data_reply = lambda address: spam if address == emails[2] else None
    report = pipeline.send(db, on(settings, server.port), edition, concurrency=1)

    assert (report.sent, report.failed, report.pending) == (5, 1, 0)
    assert [m.recipient for m in server.messages] == emails[:2] + emails[3:]
    assert b"MAIL FROM" in server.behind_dot[2]  # the fourth was already under way
    bodies = {m.data.split(b"\r\n\r\n", 1)[1].count(b"RSET") for m in server.messages}
    assert bodies == {0}
    failed = [row for row in delivery_rows(db, edition) if row["status"] == "failed"]
    assert [(row["email"], row["last_reply"]) for row in failed] == [(emails[2], spam)]


def test_a_dropped_connection_after_a_released_dot_sends_both_again(db, settings, server):
    topic = make_topic(db)
    emails = add_people(db, topic, 6)
    edition = make_edition(db, [topic])
    dropped: list[str] = []

    def drop_third_once(address: str) -> str | None:
        if address == emails[2] and not dropped:
            dropped.append(address)
            return "drop"  # after the dot, before its reply; the fourth's envelope is in
        return None

    server.data_reply = drop_third_once
    report = pipeline.send(db, on(settings, server.port), edition, concurrency=1)

    assert (report.sent, report.pending) == (6, 0)
    assert sorted(m.recipient for m in server.messages) == emails  # each once
    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    # The third was in doubt (its dot went): a retry. The fourth never reached its data:
    # it goes again uncharged, as if it had still been waiting in its slice.
    assert rows[emails[2]]["attempts"] == 2
    assert rows[emails[3]]["attempts"] == 1
    assert server.sessions == 2


def test_a_cut_session_gives_the_queued_job_its_result_too(db, settings, server):
    lanes, jobs = one_lane(db, settings, server.port, 4)
    lane = lanes.lanes[0]

    def sit_on_the_second(address: str) -> None:
        if address == jobs[1].email:
            time.sleep(0.5)  # the verdict on the second message is slow to come

    server.data_reply = sit_on_the_second
    try:
        lanes.hand(lane, jobs)
        first = poll_until(lanes, 1)
        assert [r.job.delivery_id for r in first] == [jobs[0].delivery_id]
        lanes.proceed(True)  # the second one's dot goes, the third's envelope behind it
        assert lane.queued is not None and lane.queued[0] is jobs[2]
        time.sleep(0.1)
        lanes.abort()
        rest = lanes.poll(0)
    finally:
        lanes.close()
    # Each job has exactly one result: the one under way stopped; the one queued behind
    # its dot and the last one never went, so they are handed back unsent.
    assert sorted(r.job.delivery_id for r in first + rest) == [j.delivery_id for j in jobs]
    by_id = {r.job.delivery_id: r for r in rest}
    assert isinstance(by_id[jobs[1].delivery_id].error, smtp.ConnectionFailed)
    assert by_id[jobs[2].delivery_id].skipped and by_id[jobs[2].delivery_id].error is None
    assert by_id[jobs[3].delivery_id].skipped


def _going_down_after_354(goodbye: bytes, delivered: list[str]):
    """A pipelining server whose second DATA gets its 354 and then ``goodbye``, after which
    it hangs up; every other message is taken."""
    datas = []

    def script(conn, stop) -> None:
        conn.sendall(b"220 raw.example ESMTP\r\n")
        recipient, in_data = "", False
        for line in _lines(conn):
            if in_data:
                if line == b".":
                    delivered.append(recipient)
                    conn.sendall(b"250 2.0.0 queued\r\n")
                    in_data = False
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-raw.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"RCPT":
                recipient = line.decode().partition("<")[2].rstrip(">")
                conn.sendall(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                datas.append(recipient)
                conn.sendall(b"354 go on\r\n" + (goodbye if len(datas) == 2 else b""))
                if len(datas) == 2:
                    return
                in_data = True
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:  # MAIL, RSET, NOOP
                conn.sendall(b"250 ok\r\n")

    return script


@pytest.mark.parametrize("goodbye", [b"421 4.3.2 shutting down\r\n", b""])
def test_a_server_gone_while_a_dot_is_held_leaves_no_job_behind(db, settings, goodbye):
    # The session closes with the dot of its message held; nothing of that message may
    # linger in it, or the next release would "queue" a job on a closed session and the
    # send would wait for that job's result for ever.
    delivered: list[str] = []
    server = RawServer(_going_down_after_354(goodbye, delivered))
    topic = make_topic(db)
    emails = add_people(db, topic, 5)
    edition = make_edition(db, [topic])
    done: dict = {}

    def run() -> None:
        done["report"] = pipeline.send(db, on(settings, server.port), edition, concurrency=1)

    sending = threading.Thread(target=run, daemon=True)
    sending.start()
    sending.join(30)
    server.close()
    assert not sending.is_alive(), "the send never ended"
    report = done["report"]
    assert (report.sent, report.pending) == (5, 0)
    assert sorted(delivered) == emails  # each once: the cut one went again on a new session


def test_a_write_that_fails_among_replies_ends_the_session_not_the_send(db, settings, monkeypatch):
    # 354 and 421 in one read: the body's write fails; the 421 behind it must find the
    # session already ended, not crash the loop.
    from newsletter.mail import session as session_module

    real_write = session_module.Wire.write
    broken: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not broken and len(data) > 200 and not data.endswith(b"\r\n.\r\n"):  # a held body
            broken.append(data)
            raise BrokenPipeError("Broken pipe")
        real_write(self, data)

    monkeypatch.setattr(session_module.Wire, "write", write)
    delivered: list[str] = []
    server = RawServer(_going_down_after_354(b"421 4.3.2 shutting down\r\n", delivered))
    topic = make_topic(db)
    emails = add_people(db, topic, 4)
    edition = make_edition(db, [topic])
    try:
        report = pipeline.send(db, on(settings, server.port), edition, concurrency=1)
    finally:
        server.close()
    assert broken
    assert (report.sent, report.pending) == (4, 0)
    assert sorted(delivered) == emails


def test_after_a_drop_with_its_dot_held_a_session_queues_nothing(db, settings):
    server = RawServer(_going_down_after_354(b"421 4.3.2 shutting down\r\n", []))
    lanes, jobs = one_lane(db, settings, server.port, 4)
    lane = lanes.lanes[0]
    try:
        lanes.hand(lane, jobs)
        results = poll_until(lanes, 2)  # the first sent, the second cut with its dot held
        assert [r.job.delivery_id for r in results] == [j.delivery_id for j in jobs[:2]]
        session = lane.session
        assert session.state == "opening"  # a new login for the third, not yet back
        assert not session.can_queue
        assert session.release(("a@example.fi", "b@example.org", b"x\r\n.\r\n")) is False
        lanes.proceed(True)
        assert lane.queued is None
        results += poll_until(lanes, 1)
        lanes.proceed(True)
        results += poll_until(lanes, 1)
    finally:
        lanes.close()
        server.close()
    assert sorted(r.job.delivery_id for r in results) == [j.delivery_id for j in jobs]


def test_a_bad_address_behind_a_held_dot_fails_alone_and_is_made_once(
    db, settings, server, monkeypatch
):
    topic = make_topic(db)
    emails = add_people(db, topic, 5)
    # A legacy row with a non-ASCII local part: its message cannot be made (no SMTPUTF8).
    db.execute("UPDATE subscribers SET email = 'pävi@example.org' WHERE email = ?", [emails[2]])
    edition = make_edition(db, [topic])
    made: list[int] = []
    real_prepare = Letters.prepare

    def prepare(self, job):
        made.append(job.delivery_id)
        return real_prepare(self, job)

    monkeypatch.setattr(Letters, "prepare", prepare)
    report = pipeline.send(db, on(settings, server.port), edition, concurrency=1)

    rows = delivery_rows(db, edition)
    assert [(r["status"], r["reason"]) for r in rows] == [
        ("sent", None), ("sent", None), ("failed", "invalid address"), ("sent", None),
        ("sent", None),
    ]  # fmt: skip
    assert report.sent == 4
    assert [m.recipient for m in server.messages] == emails[:2] + emails[3:]
    assert sorted(made) == sorted(set(made)) == [r["id"] for r in rows]  # each made once


def test_an_unsubscribe_during_a_pipelined_send_is_honoured_from_the_next_batch(
    db, settings, server
):
    # Messages queued behind released dots come from slices checked when they were handed
    # out; people who leave while the send runs get nothing from the next batch on.
    topic = make_topic(db)
    emails = add_people(db, topic, 120)
    edition = make_edition(db, [topic])
    quitters = {emails[70], emails[101]}
    other = open_db(settings.db)  # the web service's connection, say
    left: list[str] = []

    def leave_during_the_sixth(address: str) -> None:
        if address == emails[5] and not left:
            for email in sorted(quitters):
                subscribers.unsubscribe(other, subscribers.find(other, email)["id"], None, "web")
            left.extend(quitters)

    server.data_reply = leave_during_the_sixth
    report = pipeline.send(db, on(settings, server.port), edition, concurrency=2, batch_size=20)
    other.close()

    assert sorted(left) == sorted(quitters)
    received = [m.recipient for m in server.messages]
    assert not quitters & set(received)
    assert sorted(received) == sorted(set(emails) - quitters)  # everybody else, once each
    assert any(chunk.startswith(b"MAIL FROM") for chunk in server.behind_dot)  # queued ones
    assert (report.sent, report.failed, report.pending) == (118, 2, 0)
    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    assert {rows[email]["reason"] for email in quitters} == {"unsubscribed"}


def _silent_after_the_second_dot(delivered: list[str]):
    """A pipelining server that takes every message but never answers the second one's
    final dot: it stalls until the client gives up on it."""
    dots = []

    def script(conn, stop) -> None:
        conn.sendall(b"220 raw.example ESMTP\r\n")
        recipient, in_data, stalled = "", False, False
        for line in _lines(conn):
            if stalled:
                continue  # whatever comes after the unanswered dot stays unanswered
            if in_data:
                if line == b".":
                    in_data = False
                    dots.append(recipient)
                    stalled = len(dots) == 2
                    if not stalled:
                        delivered.append(recipient)
                        conn.sendall(b"250 2.0.0 queued\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-raw.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"RCPT":
                recipient = line.decode().partition("<")[2].rstrip(">")
                conn.sendall(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                in_data = True
                conn.sendall(b"354 go on\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")

    return script


def test_a_relay_that_stalls_after_a_released_dot(db, settings):
    # The stalled message is in doubt and tried again; the one queued behind its dot never
    # reached its data and goes again uncharged; nobody is skipped.
    delivered: list[str] = []
    server = RawServer(_silent_after_the_second_dot(delivered))
    topic = make_topic(db)
    emails = add_people(db, topic, 5)
    edition = make_edition(db, [topic])
    try:
        report = pipeline.send(
            db, on(settings, server.port, smtp_timeout=0.5), edition, concurrency=1
        )
    finally:
        server.close()
    assert (report.sent, report.pending) == (5, 0)
    assert sorted(delivered) == emails
    rows = {row["email"]: row for row in delivery_rows(db, edition)}
    assert rows[emails[1]]["attempts"] == 2 and rows[emails[2]]["attempts"] == 1
