"""One SMTP connection, kept open and reused, with replies sorted into what to do next.

``TemporaryFailure``: try again later (4xx, dropped connection, timeout).
``PermanentFailure``: this message or recipient will never be accepted (5xx); ``hard_bounce``
is set only when the server refused the recipient itself.
``ConnectionFailed``: nothing can be sent at all (no server, TLS or AUTH failure, sender
refused); a send stops and keeps everything pending.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from functools import cache
from typing import NoReturn

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mail import message


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


@cache
def _helo_name(fallback: str) -> str:
    # smtplib would call getfqdn() (a DNS lookup) for every connection.
    name = socket.gethostname()
    return name if "." in name else fallback


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificate and host-name checks on; an extra CA file for private relays."""
    context = ssl.create_default_context()
    if settings.smtp_ca_file:
        context.load_verify_locations(cafile=str(settings.smtp_ca_file))
    return context


def envelope_address(address: str) -> str:
    """The address for RCPT TO (``message.ascii_address``), refused as a permanent failure."""
    try:
        return message.ascii_address(address)
    except message.AddressError as exc:
        raise PermanentFailure(str(exc)) from None


class Connection:
    """A lazily opened, reused SMTP session. Not thread-safe: one per worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def open(self) -> None:
        if self._smtp is not None:
            return
        s = self.settings
        helo = _helo_name(s.sender_domain)
        try:
            if s.smtp_security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.smtp_host,
                    s.smtp_port,
                    local_hostname=helo,
                    timeout=s.smtp_timeout,
                    context=tls_context(s),
                )
            else:
                smtp = smtplib.SMTP(
                    s.smtp_host, s.smtp_port, local_hostname=helo, timeout=s.smtp_timeout
                )
            try:
                smtp.ehlo()
                if s.smtp_security == "starttls":
                    smtp.starttls(context=tls_context(s))
                    smtp.ehlo()
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password)
            except BaseException:
                _quietly_close(smtp)
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise ConnectionFailed(
                f"SMTP server {self.where} refused the login for {s.smtp_username!r}:"
                f" {exc.smtp_code} {_text(exc.smtp_error)}",
                code=exc.smtp_code,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ConnectionFailed(f"SMTP server {self.where}: {exc}") from None
        except ssl.SSLError as exc:
            raise ConnectionFailed(f"TLS with SMTP server {self.where} failed: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise ConnectionFailed(
                f"SMTP server {self.where} refused the session: {exc.smtp_code}"
                f" {_text(exc.smtp_error)}",
                code=exc.smtp_code,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ConnectionFailed(f"cannot reach SMTP server {self.where}: {reason}") from None
        self._smtp = smtp

    def send(self, sender: str, recipient: str, data: bytes) -> str:
        """Hand one message for one recipient to the server; the server's final reply."""
        recipient = envelope_address(recipient)
        self.open()
        smtp = self._smtp
        assert smtp is not None
        try:
            if smtp.has_extn("pipelining"):
                return _send_pipelined(self, smtp, sender, recipient, data)
            code, reply = _command(smtp, f"MAIL FROM:<{sender}>")
            if code != 250:
                self._refused_sender(sender, code, reply)
            code, reply = _command(smtp, f"RCPT TO:<{recipient}>")
            if code not in (250, 251):
                self._reset()
                self._fail(code, reply, "RCPT TO", recipient_refused=True)
            code, reply = _data(smtp, data)
            if code != 250:
                self._reset()
                self._fail(code, reply, "DATA")
            return f"{code} {_text(reply)}"
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise TemporaryFailure(f"connection to {self.where} dropped: {exc}") from None

    def _refused_sender(self, sender: str, code: int, reply: bytes) -> NoReturn:
        self._reset()
        if code >= 500:
            raise ConnectionFailed(
                f"SMTP server {self.where} refused the sender {sender}: {code} {_text(reply)}",
                code=code,
            )
        self._fail(code, reply, "MAIL FROM")

    def _fail(
        self, code: int, reply: bytes | str, stage: str, *, recipient_refused: bool = False
    ) -> NoReturn:
        text = f"{code} {_text(reply)}"
        if code == 421:  # the server is closing this session
            self.close()
        if 400 <= code < 500 or code < 200:
            raise TemporaryFailure(f"{stage}: {text}", code=code, reply=text)
        raise PermanentFailure(
            f"{stage}: {text}", code=code, reply=text, hard_bounce=recipient_refused
        )

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            _quietly_close(smtp, polite=True)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- PIPELINING (RFC 2920): its own functions, so the plain path above stays as it was ---


def _send_pipelined(
    conn: Connection, smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes
) -> str:
    """MAIL, RCPT and DATA in one write, then their replies, each matched to its command
    in order; the message counts as sent only on the final 250 after its data."""
    smtp.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode("ascii"))
    mail = _group_reply(conn, smtp)
    rcpt = _group_reply(conn, smtp)
    go = _group_reply(conn, smtp)
    if mail[0] != 250 or rcpt[0] not in (250, 251):
        if go[0] == 354:
            # A server may accept DATA although nobody is left to deliver to: end it
            # with an empty message, so the session stays in step.
            smtp.send(b".\r\n")
            smtp.getreply()
        if mail[0] != 250:
            conn._refused_sender(sender, *mail)
        conn._reset()
        conn._fail(*rcpt, "RCPT TO", recipient_refused=True)
    if go[0] != 354:
        conn._reset()
        conn._fail(*go, "DATA")
    code, reply = _message(smtp, data)
    if code != 250:
        conn._reset()
        conn._fail(code, reply, "DATA")
    return f"{code} {_text(reply)}"


def _group_reply(conn: Connection, smtp: smtplib.SMTP) -> tuple[int, bytes]:
    """The next reply of a pipelined group; a 421 ends the session at once (the server
    sends nothing after it), so the replies still owed are not waited for."""
    code, reply = smtp.getreply()
    if code == 421:
        conn._fail(code, reply, "SMTP session")
    return code, reply


def _command(smtp: smtplib.SMTP, line: str) -> tuple[int, bytes]:
    """One command and its reply. ``smtp.mail``/``rcpt`` would run ``parseaddr`` on an
    address already checked (``envelope_address``), for every message."""
    smtp.putcmd(line)
    return smtp.getreply()


def _data(smtp: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """DATA, then the message once the server says go ahead."""
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        return code, reply
    return _message(smtp, data)


# A line that starts with a dot. One compiled search finds it in a 50 KB message several
# times faster than ``bytes.replace`` or ``in`` (CPython's two-byte search is slow on text
# with a line break every 76 octets), and most messages have no such line at all.
_DOT_LINE = re.compile(rb"\n\.")


def dot_stuffed(data: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 4.5.2), ending in CRLF, without the final dot."""
    if _DOT_LINE.search(data) is not None:
        data = _DOT_LINE.sub(b"\n..", data)
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def _message(smtp: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """The message after a 354, the final dot, and the server's verdict."""
    smtp.send(dot_stuffed(data) + b".\r\n")
    return smtp.getreply()


def _quietly_close(smtp: smtplib.SMTP, polite: bool = False) -> None:
    try:
        if polite:
            smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def send_one(settings: Settings, sender: str, recipients: Sequence[str], data: bytes) -> None:
    """Send one message on a fresh connection (confirmation mails, test copies)."""
    with Connection(settings) as connection:
        for recipient in recipients:
            connection.send(sender, recipient, data)
