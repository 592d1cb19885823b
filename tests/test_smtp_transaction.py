"""The SMTP transaction without I/O: every sequence of server answers, in both modes, ends
in exactly one verdict, with the message sent only after 354 and counted only on 250, and
the reply parser reads the same replies however the octets are cut."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.mail.session import Turns
from newsletter.mail.transaction import (
    ConnectionFailed,
    PermanentFailure,
    Replies,
    TemporaryFailure,
    Transaction,
)

BODY = b"Subject: hei\r\n\r\n..piste\r\n.\r\n"
CODES = st.sampled_from([250, 251, 354, 421, 450, 451, 452, 500, 550, 552, 554, -1])


def run(pipelining: bool, answers: list[int], *, hold: bool = False):
    """Drive one transaction with ``answers`` (what the server says to each command in
    turn, 250 once they run out); the writes it made and the transaction."""
    transaction = Transaction(
        "uutiskirje@example.fi", "lukija@example.org", BODY,
        pipelining=pipelining, where="127.0.0.1:25", hold=hold,
    )  # fmt: skip
    writes = [transaction.first()]
    answers = list(answers)
    steps = 0
    while not transaction.done:
        steps += 1
        assert steps < 20, "a transaction that never ends"
        out = transaction.feed(answers.pop(0) if answers else 250, "ok")
        if out is None:
            break
        if out:
            writes.append(out)
        if transaction.awaiting_dot:
            writes.append(transaction.release())
    return writes, transaction


@given(pipelining=st.booleans(), answers=st.lists(CODES, max_size=8), hold=st.booleans())
def test_every_answer_sequence_ends_in_one_verdict(pipelining, answers, hold):
    writes, transaction = run(pipelining, answers, hold=hold)
    wire = b"".join(writes)
    assert transaction.done
    assert (transaction.reply != "") != (transaction.error is not None)
    body_sent = BODY[:-3] in wire
    if transaction.reply:
        assert transaction.reply.startswith("250 ")
        assert wire.endswith(BODY[:-3] + b".\r\n")  # the whole message, then the dot
        assert b"RSET" not in wire
    if body_sent:
        # The message only ever follows a 354 to DATA.
        assert wire.index(b"DATA\r\n") < wire.index(BODY[:-3])
    error = transaction.error
    if error is not None and not transaction.close_session:
        # The session is ready for the next message: reset, or the refused message's final
        # dot ended the transaction (an RSET there would be the next message's text).
        assert writes[-1] == b"RSET\r\n" or (wire.endswith(BODY) and b"RSET" not in wire)


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("position", [0, 1, 2, 3])
def test_a_421_at_any_step_ends_the_session_at_once(pipelining, position):
    answers = [250, 250, 354, 250]
    answers[position] = 421
    writes, transaction = run(pipelining, answers)
    assert isinstance(transaction.error, TemporaryFailure) and transaction.error.code == 421
    assert transaction.close_session
    assert b"RSET" not in b"".join(writes)  # the server is gone: nothing more is said
    assert not transaction.reply


@pytest.mark.parametrize("pipelining", [True, False])
def test_answers_sort_into_what_to_do_next(pipelining):
    _, sent = run(pipelining, [250, 250, 354, 250])
    assert sent.reply == "250 ok"

    _, refused = run(pipelining, [250, 550, 554] if pipelining else [250, 550])
    assert isinstance(refused.error, PermanentFailure) and refused.error.hard_bounce
    assert "RCPT TO" in str(refused.error)

    _, full = run(pipelining, [250, 250, 354, 552])
    assert isinstance(full.error, PermanentFailure) and not full.error.hard_bounce

    _, greylisted = run(pipelining, [250, 451, 554] if pipelining else [250, 451])
    assert isinstance(greylisted.error, TemporaryFailure)

    _, sender = run(pipelining, [550, 503, 503] if pipelining else [550])
    assert isinstance(sender.error, ConnectionFailed)
    assert "refused the sender uutiskirje@example.fi" in str(sender.error)


def test_data_accepted_for_nobody_is_ended_with_an_empty_message():
    writes, transaction = run(True, [250, 550, 354, 554, 250])
    assert writes[1] == b".\r\n" and writes[2] == b"RSET\r\n"
    assert isinstance(transaction.error, PermanentFailure) and transaction.error.hard_bounce
    assert BODY[:-3] not in b"".join(writes)


def test_a_held_dot_goes_only_when_released():
    transaction = Transaction(
        "a@example.fi", "b@example.org", BODY, pipelining=True, where="x", hold=True
    )
    transaction.first()
    for code in (250, 250):
        assert transaction.feed(code, "ok") == b""
    assert transaction.feed(354, "go") == BODY[:-3]
    assert transaction.awaiting_dot and not transaction.done
    assert transaction.release() == b".\r\n"
    assert transaction.release() == b""  # only once
    assert transaction.feed(250, "queued") is None and transaction.reply == "250 queued"


def test_released_before_the_body_the_dot_goes_with_it():
    transaction = Transaction(
        "a@example.fi", "b@example.org", BODY, pipelining=False, where="x", hold=True
    )
    transaction.first()
    assert transaction.release() == b""
    transaction.feed(250, "ok")
    transaction.feed(250, "ok")
    assert transaction.feed(354, "go") == BODY


def test_a_message_without_its_end_is_refused():
    with pytest.raises(ValueError):
        Transaction("a@example.fi", "b@example.org", b"no end", pipelining=True, where="x")


REPLY = st.tuples(
    st.sampled_from([220, 250, 354, 421, 550]),
    st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30),
             min_size=1, max_size=4),
)  # fmt: skip


@given(replies=st.lists(REPLY, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 400)))
def test_replies_read_the_same_however_the_octets_are_cut(replies, cuts):
    wire = b"".join(
        b"".join(
            f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode()
            for i, line in enumerate(lines)
        )
        for code, lines in replies
    )
    expected = [(code, "\n".join(line.strip(" \t") for line in lines)) for code, lines in replies]
    parser = Replies()
    found: list[tuple[int, str]] = []
    position = 0
    for cut in sorted(cuts):
        found += parser.feed(wire[position:cut])
        position = max(position, cut)
    found += parser.feed(wire[position:])
    assert found == expected


def test_an_endless_reply_line_is_refused():
    parser = Replies()
    with pytest.raises(TemporaryFailure, match="longer than"):
        for _ in range(10):
            parser.feed(b"250-" + b"x" * 1000)


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("code", [250, 354, 451, 554])
def test_a_reply_before_the_held_dot_is_out_of_step(pipelining, code):
    # The server has the body but not its end: nothing it says now can be the verdict on
    # the message, and RSET would only be more message text.
    transaction = Transaction(
        "a@example.fi", "b@example.org", BODY, pipelining=pipelining, where="x", hold=True
    )
    transaction.first()
    transaction.feed(250, "ok")  # MAIL FROM
    transaction.feed(250, "ok")  # RCPT TO
    assert transaction.feed(354, "go") == BODY[:-3] and transaction.awaiting_dot
    assert transaction.feed(code, "too early") is None
    assert not transaction.reply and transaction.error is not None
    assert transaction.close_session
    assert transaction.release() == b""  # the dot never goes: the message is dropped


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_reply_that_fits_no_command_is_temporary_and_ends_the_session(pipelining):
    # A 250 where the 354 belongs (a stray reply shifted the rest): the server is out of
    # step, which says nothing against the recipient: no hard bounce, no RSET into it.
    writes, transaction = run(pipelining, [250, 250, 250])
    assert isinstance(transaction.error, TemporaryFailure)
    assert transaction.close_session and b"RSET" not in b"".join(writes)
    _, shifted = run(pipelining, [250, 354] if not pipelining else [250, 354, 354])
    assert isinstance(shifted.error, TemporaryFailure)
    assert not getattr(shifted.error, "hard_bounce", False)


def two_in_turn(answers: list[int]):
    """A message under way with its dot held, a second queued behind the released dot, and
    ``answers`` (then 250s) to whatever comes next: (first, second, what the wire carried,
    the transactions a closed session left without a verdict)."""
    limits = SimpleNamespace(smtp_timeout=5.0, smtp_deadline=60.0, smtp_max_reply=65536)
    turns = Turns(limits, "127.0.0.1:25")  # type: ignore[arg-type]
    first, second = (
        Transaction("a@example.fi", f"{who}@example.org", BODY, pipelining=True,
                    where="x", hold=True)
        for who in ("eka", "toka")
    )  # fmt: skip
    turns.start(first)
    for code in (250, 250, 354):
        turns.feed(code, "ok")
    assert first.awaiting_dot
    wire = turns.release(second)
    assert wire.startswith(b".\r\nMAIL FROM:<a@example.fi>\r\nRCPT TO:<toka@example.org>")
    ended = []
    given = list(answers)
    for _ in range(20):
        if turns.current is None:
            break
        out, done = turns.feed(given.pop(0) if given else 250, "ok")
        wire += out
        if done is not None:
            ended.append(done)
        if turns.current is not None and turns.current.awaiting_dot:
            wire += turns.release()
    left = turns.drain()
    assert ended + left == [first, second]  # in order, each once
    assert turns.current is None and turns.queued is None
    return first, second, wire, left


@given(answers=st.lists(CODES, max_size=10))
def test_a_transaction_queued_behind_a_dot_ends_after_the_one_before(answers):
    # Replies come in the order of the commands; whatever they say, the message under way
    # gets its verdict first, the queued one second, and each exactly one.
    first, second, wire, left = two_in_turn(answers)
    # The queued one is left over only when the first one's verdict closed the session;
    # otherwise it took the replies after that verdict and ended with them.
    assert left == ([second] if first.close_session else [])
    if second.reply:
        assert wire.endswith(BODY[:-3] + b".\r\n")
    if first.close_session:
        assert second.error is None and not second.reply  # the session ends it as unsent


def test_the_queued_transaction_takes_the_replies_after_the_verdict():
    first, second, _, _ = two_in_turn([250, 250, 250, 354, 250])
    assert first.reply and second.reply
    refused, second, wire, _ = two_in_turn([550, 250, 250, 354, 250])
    assert isinstance(refused.error, PermanentFailure) and second.reply
    assert b"RSET" not in wire  # it would have been the second message's text
