"""One SMTP connection, kept open and reused, with replies sorted into what to do next.

``TemporaryFailure``: try again later (4xx, dropped connection, timeout).
``PermanentFailure``: this message or recipient will never be accepted (5xx); ``hard_bounce``
is set only when the server refused the recipient itself.
``ConnectionFailed``: nothing can be sent at all (no server, TLS or AUTH failure, sender
refused, a server too slow to finish within the deadline); a send stops and keeps
everything pending.

Every socket step has the per-step ``smtp.timeout``; on top, a whole transaction (connect to
the end of the login, or MAIL FROM to the reply after DATA) must finish within
``smtp.deadline`` and the server may send at most ``smtp.max_reply`` octets in it, so a server
answering one byte every few seconds cannot hold a send for hours.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from functools import cache

from newsletter.config import Settings
from newsletter.links import is_loopback
from newsletter.mail import message
from newsletter.mail.dots import END, dot_stuffed
from newsletter.mail.transaction import (
    ConnectionFailed,
    PermanentFailure,
    SmtpError,
    TemporaryFailure,
    Transaction,
    text_of,
)

__all__ = [
    "Connection",
    "ConnectionFailed",
    "PermanentFailure",
    "SmtpError",
    "TemporaryFailure",
    "dot_stuffed",
    "send_one",
]


def past_deadline(seconds: float) -> str:
    """Why a transaction ended at ``smtp.deadline`` (the blocking and the loop's sessions)."""
    return f"did not finish within {seconds:g} s (smtp.deadline)"


def said_too_much(octets: int) -> str:
    """Why a transaction ended at ``smtp.max_reply``."""
    return f"sent more than {octets} octets of replies (smtp.max_reply)"


class _Expired(TimeoutError):
    """The transaction's deadline passed, or the server sent more than the cap allows."""


class _Budget:
    """The deadline and the reply-size cap of the transaction under way (one per session)."""

    def __init__(self, step_timeout: float, seconds: float, max_reply: int) -> None:
        self.step_timeout = step_timeout
        self.seconds = seconds
        self.max_reply = max_reply
        self.deadline = 0.0
        self.received = 0
        self.why = ""  # set when a limit was hit: smtplib hides the error behind its own
        self.aborted = threading.Event()

    def start(self) -> None:
        self.deadline = time.monotonic() + self.seconds
        self.received = 0

    def timeout(self) -> float:
        """The socket timeout for the next step: what is left of the deadline, at most."""
        if self.aborted.is_set():
            self.why = "stopped"
            raise _Expired(self.why)
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.why = past_deadline(self.seconds)
            raise _Expired(self.why)
        return min(self.step_timeout, left)

    def count(self, octets: int) -> None:
        self.received += octets
        if self.received > self.max_reply:
            self.why = said_too_much(self.max_reply)
            raise _Expired(self.why)


class _Reader:
    """``readline`` for smtplib over the raw socket, bounded by the budget; replaces the
    file smtplib would make, whose reads only know the per-step timeout."""

    def __init__(self, sock: socket.socket, budget: _Budget) -> None:
        self.sock = sock
        self.budget = budget
        self.buffer = b""

    def readline(self, limit: int = -1) -> bytes:
        while b"\n" not in self.buffer and (limit < 0 or len(self.buffer) < limit):
            self.sock.settimeout(self.budget.timeout())
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                self.budget.timeout()  # names the deadline when it was what ran out
                raise
            if not chunk:
                self.budget.timeout()  # after abort(): the end is ours, not the server's
                break
            self.budget.count(len(chunk))
            self.buffer += chunk
        cut = self.buffer.find(b"\n") + 1 or len(self.buffer)
        if limit >= 0:
            cut = min(cut, limit)
        line, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return line

    def close(self) -> None:
        self.buffer = b""


class _BoundedMixin:
    """smtplib's SMTP with every read and write held to the session's ``_Budget``."""

    budget: _Budget
    sock: socket.socket | None
    file: object

    def getreply(self) -> tuple[int, bytes]:
        if self.sock is not None and not isinstance(self.file, _Reader):
            self.file = _Reader(self.sock, self.budget)
        return super().getreply()  # type: ignore[misc]

    def send(self, s: bytes | str) -> None:
        if self.sock is not None:
            self.sock.settimeout(self.budget.timeout())
        try:
            super().send(s)  # type: ignore[misc]
        except smtplib.SMTPServerDisconnected:
            self.budget.timeout()  # names the deadline when it was what ran out
            raise


class _SMTP(_BoundedMixin, smtplib.SMTP):
    pass


class _SMTPSSL(_BoundedMixin, smtplib.SMTP_SSL):
    pass


@cache
def _helo_name(fallback: str) -> str:
    # smtplib would call getfqdn() (a DNS lookup) for every connection.
    name = socket.gethostname()
    return name if "." in name else fallback


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
        self._budget = _Budget(
            settings.smtp_timeout, settings.smtp_deadline, settings.smtp_max_reply
        )

    @property
    def where(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def open(self) -> None:
        if self._smtp is not None:
            return
        refuse_clear_text_login(self.settings)
        self._budget.start()
        try:
            self._smtp = _login(self.settings, self._budget)
        except _Expired:
            raise self._too_slow() from None
        except (OSError, smtplib.SMTPException) as exc:
            if self._budget.why:
                raise self._too_slow() from None
            raise _session_error(exc, self.where, self.settings.smtp_username) from None

    def _too_slow(self) -> ConnectionFailed:
        why, self._budget.why = self._budget.why, ""
        self.close()
        if why == "stopped":
            return ConnectionFailed(f"stopped talking to SMTP server {self.where}")
        return ConnectionFailed(f"SMTP server {self.where} {why}")

    def abort(self) -> None:
        """From another thread: make the transaction under way end within moments."""
        self._budget.aborted.set()
        smtp = self._smtp
        sock = getattr(smtp, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def send(self, sender: str, recipient: str, data: bytes) -> str:
        """Hand one message for one recipient to the server; the server's final reply."""
        recipient = envelope_address(recipient)
        self.open()
        smtp = self._smtp
        assert smtp is not None
        self._budget.start()
        transaction = Transaction(
            sender, recipient, dot_stuffed(data) + END,
            pipelining=bool(smtp.has_extn("pipelining")), where=self.where,
        )  # fmt: skip
        try:
            out = transaction.first()
            while out is not None:
                if out:
                    smtp.send(out)
                code, reply = smtp.getreply()
                out = transaction.feed(code, reply.decode("utf-8", "replace"))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            if self._budget.why:
                raise self._too_slow() from None
            self.close()
            if transaction.known_failure is not None:
                raise transaction.known_failure from None
            raise TemporaryFailure(f"connection to {self.where} dropped: {exc}") from None
        if transaction.close_session:
            self.close()
        if transaction.error is not None:
            raise transaction.error
        return transaction.reply

    @property
    def pipelining(self) -> bool:
        """The open session's server offers PIPELINING (RFC 2920)."""
        return self._smtp is not None and bool(self._smtp.has_extn("pipelining"))

    def detach(self) -> socket.socket:
        """The open session's socket, handed over (after ``open``): this object forgets it."""
        smtp, self._smtp = self._smtp, None
        assert smtp is not None and smtp.sock is not None
        reader = smtp.file
        if isinstance(reader, _Reader) and reader.buffer:
            _quietly_close(smtp)
            raise ConnectionFailed(f"SMTP server {self.where} spoke out of turn")
        sock, smtp.sock, smtp.file = smtp.sock, None, None
        return sock

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            _quietly_close(smtp, polite=True)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _login(settings: Settings, budget: _Budget) -> smtplib.SMTP:
    """A new session: connected, greeted, TLS as configured, logged in; all within the
    budget's deadline."""
    s = settings
    helo = _helo_name(s.sender_domain)
    first = min(s.smtp_timeout, s.smtp_deadline)
    if s.smtp_security == "ssl":
        smtp: smtplib.SMTP = _SMTPSSL(local_hostname=helo, timeout=first, context=tls_context(s))
    else:
        smtp = _SMTP(local_hostname=helo, timeout=first)
    smtp.budget = budget  # type: ignore[attr-defined]
    smtp._host = s.smtp_host  # for the TLS host-name check (the constructor sets it)
    try:
        smtp.connect(s.smtp_host, s.smtp_port)
        smtp.ehlo()
        if s.smtp_security == "starttls":
            smtp.starttls(context=tls_context(s))
            smtp.ehlo()
        if s.smtp_username:
            smtp.login(s.smtp_username, s.smtp_password)
    except BaseException:
        _quietly_close(smtp)
        raise
    return smtp


def _session_error(exc: BaseException, where: str, username: str) -> ConnectionFailed:
    """One line naming what went wrong when opening a session."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ConnectionFailed(
            f"SMTP server {where} refused the login for {username!r}:"
            f" {exc.smtp_code} {text_of(exc.smtp_error)}",
            code=exc.smtp_code,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ConnectionFailed(f"SMTP server {where}: {exc}")
    if isinstance(exc, ssl.SSLError):
        return ConnectionFailed(f"TLS with SMTP server {where} failed: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return ConnectionFailed(
            f"SMTP server {where} refused the session: {exc.smtp_code} {text_of(exc.smtp_error)}",
            code=exc.smtp_code,
        )
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return ConnectionFailed(f"cannot reach SMTP server {where}: {reason}")


def refuse_clear_text_login(settings: Settings) -> None:
    """The password never crosses a network in clear text: AUTH needs TLS off loopback."""
    if not settings.smtp_username or settings.smtp_security != "none":
        return
    if is_loopback(settings.smtp_host):
        return
    raise ConnectionFailed(
        f"refusing to send the SMTP password to {settings.smtp_host}:{settings.smtp_port}"
        " without TLS: set smtp.security to starttls or ssl"
    )


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
