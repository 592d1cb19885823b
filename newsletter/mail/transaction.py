"""One message's SMTP transaction as a state machine without I/O, and the reply parser.

The blocking ``smtp.Connection`` and the send loop's non-blocking sessions drive the same
``Transaction``: it says what to write, is fed each reply, and ends with the server's final
reply or the ``SmtpError`` that sorts the failure. So both paths classify every answer alike.

With PIPELINING (RFC 2920) MAIL, RCPT and DATA go in one write and their replies are matched
to them in order; without it each command waits for its reply. Either way the message counts
as sent only on the 250 after its data. A transaction refused before its data is reset (RSET)
so the session can carry the next one; the final dot ends it whatever the verdict.
"""

from __future__ import annotations

from newsletter.errors import NewsletterError

MAX_LINE = 8192  # octets of one reply line, as smtplib allows


class SmtpError(NewsletterError):
    def __init__(self, message: str, *, code: int | None = None, reply: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply or message


class TemporaryFailure(SmtpError):
    pass


class PermanentFailure(SmtpError):
    def __init__(
        self, message: str, *, code: int | None = None, reply: str = "", hard_bounce: bool = False
    ) -> None:
        super().__init__(message, code=code, reply=reply)
        self.hard_bounce = hard_bounce


class ConnectionFailed(SmtpError):
    pass


def text_of(reply: bytes | str) -> str:
    """A reply's text on one line (a multi-line reply's lines joined by spaces)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


def failure(code: int, text: str, stage: str, *, recipient_refused: bool = False) -> SmtpError:
    """The error for a refusal at ``stage``: 5xx permanent (``hard_bounce`` only when the
    server refused the recipient itself); 4xx temporary, and so is a reply that does not
    fit the command (a 250 where 354 belongs, nonsense): the server is out of step, which
    says nothing against the message."""
    line = f"{code} {text}"
    if code < 500:
        return TemporaryFailure(f"{stage}: {line}", code=code, reply=line)
    return PermanentFailure(
        f"{stage}: {line}", code=code, reply=line, hard_bounce=recipient_refused
    )


def _before_the_dot(code: int, text: str) -> SmtpError:
    """A reply while the final dot is still held answers no command: it cannot accept the
    message, and an RSET now would be message text. The session ends without the dot, so
    the server drops the message; a refusal keeps its class, anything else is temporary."""
    if code >= 400:
        return failure(code, text, "DATA")
    early = f"DATA: {code} {text} before the end of the message"
    return TemporaryFailure(early, code=code, reply=early)


def _sender_refused(transaction: Transaction, code: int, text: str) -> SmtpError:
    """A refused MAIL FROM: permanent means no message of this send can go (a stop)."""
    if code >= 500:
        return ConnectionFailed(
            f"SMTP server {transaction.where} refused the sender {transaction.sender}:"
            f" {code} {text}",
            code=code,
        )
    return failure(code, text, "MAIL FROM")


class Replies:
    """Complete SMTP replies out of the octets a server sends: (code, text) each, the text of
    a multi-line reply joined by newlines, as smtplib gives it."""

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[bytes] = []

    def feed(self, data: bytes) -> list[tuple[int, str]]:
        self._buffer += data
        found: list[tuple[int, str]] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
            if (reply := self._line(line)) is not None:
                found.append(reply)
        if len(self._buffer) > MAX_LINE:
            raise TemporaryFailure(f"a reply line longer than {MAX_LINE} octets")
        return found

    def _line(self, line: bytes) -> tuple[int, str] | None:
        self._lines.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] == b"-":
            return None
        lines, self._lines = self._lines, []
        code = int(line[:3]) if line[:3].isdigit() else -1
        return code, b"\n".join(lines).decode("utf-8", "replace")


class Transaction:
    """MAIL, RCPT, DATA and the message for one recipient; ``first()`` is the first write,
    ``feed(code, text)`` takes each reply in turn and returns what to write next, or None
    when the transaction is over: then ``reply`` is the final "250 ..." or ``error`` is set.
    ``close_session`` says the session cannot carry another transaction (a 421)."""

    def __init__(
        self,
        sender: str,
        recipient: str,
        stuffed: bytes,
        *,
        pipelining: bool,
        where: str,
        hold: bool = False,
    ) -> None:
        if not stuffed.endswith(b"\r\n.\r\n"):
            raise ValueError("a message for DATA ends with CRLF . CRLF")
        self.sender = sender
        self.recipient = recipient
        self.stuffed = stuffed  # dot-stuffed, ending with the final ".\r\n"
        # The final dot waits for ``release``: until it is sent the server cannot accept
        # the message, and a session closed before it drops the message (RFC 5321 4.1.1.4).
        self.hold = hold
        self._dot_owed = False
        self.pipelining = pipelining
        self.where = where
        self.reply, self.close_session = "", False
        self.error: SmtpError | None = None
        self._expect: list[str] = []  # the commands whose replies are still owed, in order
        self._group: list[tuple[int, str]] = []
        self._after_reset: SmtpError | None = None

    @property
    def done(self) -> bool:
        return not self._expect

    @property
    def awaiting_dot(self) -> bool:
        """All of the message but its held final dot is out: nothing is owed by the server."""
        return self._dot_owed

    @property
    def known_failure(self) -> SmtpError | None:
        """The failure already decided while its RSET (or empty message) is under way: what
        to report when the session breaks before that reply comes."""
        return self._after_reset

    def first(self) -> bytes:
        mail = f"MAIL FROM:<{self.sender}>\r\n"
        if not self.pipelining:
            self._expect = ["MAIL FROM"]
            return mail.encode("ascii")
        self._expect = ["MAIL FROM", "RCPT TO", "DATA"]
        return f"{mail}RCPT TO:<{self.recipient}>\r\nDATA\r\n".encode("ascii")

    def feed(self, code: int, text: str) -> bytes | None:
        stage = self._expect.pop(0)
        text = text_of(text)
        if code == 421 and stage != "RSET":  # the server ends the session: nothing follows
            label = "DATA" if stage == "message" else stage
            if self.pipelining and stage != "message":
                label = "SMTP session"
            return self._end(failure(code, text, label), close=True)
        if self._dot_owed:  # not the verdict on the message: the session must end
            return self._end(_before_the_dot(code, text), close=True)
        handler = getattr(self, "_on_" + stage.replace(" ", "_").lower())
        return handler(code, text)

    # --- each reply, by the command it answers ---

    def _on_mail_from(self, code: int, text: str) -> bytes | None:
        if self.pipelining:
            self._group.append((code, text))
            return b""
        if code != 250:
            return self._reset(_sender_refused(self, code, text))
        self._expect = ["RCPT TO"]
        return f"RCPT TO:<{self.recipient}>\r\n".encode("ascii")

    def _on_rcpt_to(self, code: int, text: str) -> bytes | None:
        if self.pipelining:
            self._group.append((code, text))
            return b""
        if code not in (250, 251):
            return self._reset(failure(code, text, "RCPT TO", recipient_refused=True))
        self._expect = ["DATA"]
        return b"DATA\r\n"

    def _on_data(self, code: int, text: str) -> bytes | None:
        if self.pipelining:
            (mail, mail_text), (rcpt, rcpt_text) = self._group
            if mail != 250 or rcpt not in (250, 251):
                if mail != 250:
                    error = _sender_refused(self, mail, mail_text)
                else:
                    error = failure(rcpt, rcpt_text, "RCPT TO", recipient_refused=True)
                if code == 354:
                    # A server may take DATA although nobody is left to deliver to: end it
                    # with an empty message, so the session stays in step.
                    self._expect, self._after_reset = ["empty message"], error
                    return b".\r\n"
                return self._reset(error)
        if code != 354:
            return self._reset(failure(code, text, "DATA"))
        self._expect = ["message"]
        if self.hold:
            self._dot_owed = True
            return self.stuffed[:-3]
        return self.stuffed

    def release(self) -> bytes:
        """Let the final dot go: the octets to write now (the dot, when the rest of the
        message is already out)."""
        self.hold = False
        owed, self._dot_owed = self._dot_owed, False
        return b".\r\n" if owed else b""

    def _on_empty_message(self, code: int, text: str) -> bytes | None:
        assert self._after_reset is not None
        return self._reset(self._after_reset)

    def _on_message(self, code: int, text: str) -> bytes | None:
        if code != 250:
            # The final dot ends the transaction whatever the verdict (RFC 5321 4.1.1.4):
            # no RSET, which would land in the next message when it is pipelined behind.
            error = failure(code, text, "DATA")
            return self._end(error, close=code < 400)  # below 400: out of step
        self.reply = f"{code} {text}"
        return None

    def _on_rset(self, code: int, text: str) -> bytes | None:
        assert self._after_reset is not None
        return self._end(self._after_reset, close=code != 250)

    # --- endings ---

    def _reset(self, error: SmtpError) -> bytes | None:
        if error.code is not None and error.code < 400:
            return self._end(error, close=True)  # out of step: an RSET would not help
        self._expect, self._after_reset = ["RSET"], error
        return b"RSET\r\n"

    def _end(self, error: SmtpError, *, close: bool) -> bytes | None:
        self._expect, self.error, self._dot_owed = [], error, False  # a held dot never goes
        self.close_session = close or self.close_session
        return None
