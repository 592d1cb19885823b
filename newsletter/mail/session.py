"""SMTP sessions driven by one event loop: every connection of a send in one thread.

Threads per connection paid for themselves in hand-offs: each message crossed two queues
and the interpreter lock several times, which cost more CPU than rendering it. Here one
thread waits on all sockets at once (``selectors``) and each ``Session`` runs its message's
``Transaction`` without blocking. Only the login (connect, greeting, STARTTLS, AUTH), rare
and slow over a network, runs on a short-lived thread of its own, through the same
``smtp.Connection`` one-off mails use, then hands its socket to the loop.

Limits as ``smtp.Connection`` has them: each step waits at most ``smtp.timeout``, a whole
transaction at most ``smtp.deadline``, and a server may send at most ``smtp.max_reply``
octets of replies in it.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from newsletter.config import Settings
from newsletter.mail import smtp
from newsletter.mail.transaction import Replies, SmtpError, TemporaryFailure, Transaction

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


@dataclass
class Event:
    """What ``Loop.poll`` reports of a session: its login ended (``opened``; ``error`` set
    when it failed) or its transaction ended (``reply``, else ``error``)."""

    session: Session
    opened: bool = False
    reply: str = ""
    error: SmtpError | None = None


class Session:
    """One connection: ``open`` (a login on its own thread), then ``send`` one transaction at
    a time; the outcome of each comes back as an ``Event`` from the loop's ``poll``."""

    def __init__(self, settings: Settings, loop: Loop) -> None:
        self.settings = settings
        self.loop = loop
        self.state = "closed"  # closed | opening | idle | busy
        self.pipelining = False
        self._login = smtp.Connection(settings)
        self._sock: socket.socket | None = None
        self._out = memoryview(b"")
        self._replies = Replies()
        self._transaction: Transaction | None = None
        self._step_due = 0.0
        self._deadline = 0.0
        self._received = 0
        self._waiting_to_write = False
        self._held_at = 0.0  # when all but the held dot was out

    @property
    def awaiting_dot(self) -> bool:
        """All of the message but its held final dot is out (see ``release``)."""
        return self._held_at != 0.0

    @property
    def where(self) -> str:
        return self._login.where

    def open(self) -> None:
        assert self.state == "closed"
        self.state = "opening"
        threading.Thread(target=self._log_in, daemon=True).start()

    def _log_in(self) -> None:
        try:
            self._login.open()
            self.pipelining = self._login.pipelining
            sock = self._login.detach()
        except SmtpError as exc:
            self.loop.logged_in(self, None, exc)
        except BaseException as exc:  # the loop must always hear back
            self.loop.logged_in(self, None, smtp.ConnectionFailed(f"login failed: {exc!r}"))
        else:
            self.loop.logged_in(self, sock, None)

    def attach(self, sock: socket.socket) -> None:
        """From the loop's thread: the logged-in socket joins the loop."""
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            # A held dot is written on its own, just after the body: Nagle's algorithm would
            # keep it back until the server's delayed ACK (tens of milliseconds).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self.state = sock, "idle"
        self._waiting_to_write = False
        self._replies = Replies()
        self.loop.selector.register(sock, selectors.EVENT_READ, self)

    def send(self, sender: str, recipient: str, stuffed: bytes, *, hold: bool = False) -> None:
        """Start one transaction; ``stuffed`` is the dot-stuffed message with its final dot,
        which with ``hold`` waits for ``release``."""
        assert self.state == "idle"
        self._transaction = Transaction(
            sender, recipient, stuffed, pipelining=self.pipelining, where=self.where, hold=hold
        )
        self._held_at = 0.0
        self.state = "busy"
        current = time.monotonic()
        self._deadline = current + self.settings.smtp_deadline
        self._step_due = current + self.settings.smtp_timeout
        self._received = 0
        self._write(self._transaction.first())

    def release(self) -> None:
        """The held final dot may go; the wait does not count against the step limits."""
        transaction = self._transaction
        if self.state != "busy" or transaction is None or not transaction.hold:
            return
        if self._held_at:
            current = time.monotonic()
            self._deadline += current - self._held_at
            self._step_due = current + self.settings.smtp_timeout
            self._held_at = 0.0
        out = transaction.release()
        if out:
            self._write(out)

    def abort(self) -> None:
        """End at once: a transaction under way fails as stopped, a login is cut short."""
        if self.state == "opening":
            self._login.abort()
        elif self.state == "busy":
            self._finish(smtp.ConnectionFailed(f"stopped talking to SMTP server {self.where}"))
        self.close(polite=False)

    def close(self, *, polite: bool = True) -> None:
        sock, self._sock = self._sock, None
        polite = polite and self.state == "idle"  # mid-DATA a QUIT would be message text
        if self.state != "opening":
            self.state = "closed"
        self._transaction, self._out = None, memoryview(b"")
        if sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.loop.selector.unregister(sock)
        if polite:
            with contextlib.suppress(OSError):
                sock.send(b"QUIT\r\n")  # best effort: nobody waits for the goodbye
        with contextlib.suppress(OSError):
            sock.close()

    # --- from the loop ---

    def readable(self) -> None:
        assert self._sock is not None
        try:
            data = self._recv(self._sock)
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            self._dropped(str(exc))
            return
        if not data:
            self._dropped("Connection unexpectedly closed")
            return
        if self.state != "busy":
            self.close(polite=False)  # an idle session's server spoke (a goodbye): done
            return
        self._step_due = time.monotonic() + self.settings.smtp_timeout
        self._received += len(data)
        if self._received > self.settings.smtp_max_reply:
            cap = self.settings.smtp_max_reply
            self._too_slow(f"sent more than {cap} octets of replies (smtp.max_reply)")
            return
        try:
            replies = self._replies.feed(data)
        except SmtpError as exc:
            self._finish(exc)
            self.close(polite=False)
            return
        self._take(replies)

    def _recv(self, sock: socket.socket) -> bytes:
        data = sock.recv(65536)
        if isinstance(sock, ssl.SSLSocket):
            while data and sock.pending():  # decrypted octets the selector cannot see
                data += sock.recv(65536)
        return data

    def _take(self, replies: list[tuple[int, str]]) -> None:
        transaction = self._transaction
        for index, (code, text) in enumerate(replies):
            assert transaction is not None
            out = transaction.feed(code, text)
            if out is None:
                closing = transaction.close_session or index < len(replies) - 1
                self._finish(transaction.error)
                if closing:  # a 421, or replies nobody asked for: out of step
                    self.close(polite=False)
                return
            if out:
                self._write(out)
            if transaction.awaiting_dot and not self._held_at:
                self._held_at = time.monotonic()

    def writable(self) -> None:
        self._flush()

    def check_time(self, current: float) -> float:
        """Fail a transaction past its limits; the time of its next limit (0: none)."""
        if self.state != "busy":
            return 0.0
        if self._held_at:
            return 0.0  # waiting for our own go-ahead (the held dot), not for the server
        if current >= self._deadline:
            limit = self.settings.smtp_deadline
            self._too_slow(f"did not finish within {limit:g} s (smtp.deadline)")
            return 0.0
        if current >= self._step_due:
            self._dropped("timed out")
            return 0.0
        return min(self._deadline, self._step_due)

    # --- inside ---

    def _write(self, data: bytes) -> None:
        self._out = memoryview(data) if not self._out else memoryview(bytes(self._out) + data)
        self._flush()

    def _flush(self) -> None:
        sock = self._sock
        while self._out and sock is not None:
            try:
                sent = sock.send(self._out)
            except _WOULD_BLOCK:
                break
            except OSError as exc:
                self._dropped(str(exc))
                return
            self._out = self._out[sent:]
        if sock is not None and self._waiting_to_write != bool(self._out):
            self._waiting_to_write = bool(self._out)  # epoll_ctl only when it changes
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._out else 0)
            self.loop.selector.modify(sock, events, self)

    def _dropped(self, why: str) -> None:
        transaction = self._transaction
        if self.state == "busy" and transaction is not None:
            known = transaction.known_failure
            self._finish(known or TemporaryFailure(f"connection to {self.where} dropped: {why}"))
        self.close(polite=False)

    def _too_slow(self, why: str) -> None:
        self._finish(smtp.ConnectionFailed(f"SMTP server {self.where} {why}"))
        self.close(polite=False)

    def _finish(self, error: SmtpError | None) -> None:
        transaction, self._transaction = self._transaction, None
        assert transaction is not None
        self.state = "idle"
        reply = transaction.reply if error is None else ""
        self.loop.events.append(Event(self, reply=reply, error=error))


class Loop:
    """The selector all sessions share, and the events they produced since the last poll."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.events: list[Event] = []
        self._logins: queue.SimpleQueue[tuple[Session, socket.socket | None, SmtpError | None]]
        self._logins = queue.SimpleQueue()
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self.selector.register(self._wake_in, selectors.EVENT_READ, None)

    def logged_in(
        self, session: Session, sock: socket.socket | None, error: SmtpError | None
    ) -> None:
        """From a login thread: its outcome, for the loop's thread to take in."""
        self._logins.put((session, sock, error))
        with contextlib.suppress(OSError):
            self._wake_out.send(b"!")

    def poll(self, timeout: float, sessions: list[Session]) -> list[Event]:
        """Wait up to ``timeout`` seconds for something to happen; what happened."""
        current = time.monotonic()
        for session in sessions:
            due = session.check_time(current)
            if due:
                timeout = min(timeout, max(0.0, due - current))
        if not self.events:
            for key, mask in self.selector.select(timeout):
                session = key.data
                if session is None:
                    with contextlib.suppress(OSError):
                        self._wake_in.recv(4096)
                    continue
                if mask & selectors.EVENT_WRITE and session.state == "busy":
                    session.writable()
                if mask & selectors.EVENT_READ and session.state in ("idle", "busy"):
                    session.readable()
        self._take_logins()
        events, self.events = self.events, []
        return events

    def _take_logins(self) -> None:
        while True:
            try:
                session, sock, error = self._logins.get_nowait()
            except queue.Empty:
                return
            session.state = "closed"
            if sock is not None:
                session.attach(sock)
            self.events.append(Event(session, opened=True, error=error))

    def close(self) -> None:
        self.selector.close()
        self._wake_in.close()
        self._wake_out.close()
