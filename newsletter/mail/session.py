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
    # It was queued behind a dot and the session ended first: its message never went, so
    # it goes again, uncharged, like a job still in its slice.
    unsent: bool = False

    @classmethod
    def ended(cls, session: Session, transaction: Transaction, error: SmtpError | None) -> Event:
        return cls(session, reply=transaction.reply if error is None else "", error=error)


class Wire:
    """A logged-in socket in the loop's selector: non-blocking, with what is written queued
    until the kernel takes it. Its errors are ``OSError``s for the session to sort."""

    def __init__(self, sock: socket.socket, selector: selectors.BaseSelector, owner: object):
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            # A held dot is written on its own, just after the body: Nagle's algorithm would
            # keep it back until the server's delayed ACK (tens of milliseconds).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.selector = selector
        self.owner = owner
        self._out = memoryview(b"")
        self._writing = False  # registered for EVENT_WRITE
        selector.register(sock, selectors.EVENT_READ, owner)

    def write(self, data: bytes) -> None:
        self._out = memoryview(bytes(self._out) + data) if self._out else memoryview(data)
        self.flush()

    def flush(self) -> None:
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except _WOULD_BLOCK:
                break
            self._out = self._out[sent:]
        if self._writing != bool(self._out):  # epoll_ctl only when the interest changes
            self._writing = bool(self._out)
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._writing else 0)
            self.selector.modify(self.sock, events, self.owner)

    def read(self) -> bytes | None:
        """What arrived, None when nothing has yet; OSError when the server closed."""
        try:
            data = self.sock.recv(65536)
            if isinstance(self.sock, ssl.SSLSocket):
                while data and self.sock.pending():  # decrypted octets the selector cannot see
                    data += self.sock.recv(65536)
        except _WOULD_BLOCK:
            return None
        if not data:
            raise ConnectionError("Connection unexpectedly closed")
        return data

    def close(self, goodbye: bytes = b"") -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.sock)
        with contextlib.suppress(OSError):
            if goodbye:
                self.sock.send(goodbye)  # best effort: nobody waits for the answer
        with contextlib.suppress(OSError):
            self.sock.close()


class Limits:
    """How long one transaction may take, per step and in all, and how much the server may
    say in it; the wait for a held dot is ours, so it counts against neither."""

    def __init__(self, settings: Settings) -> None:
        self.step = settings.smtp_timeout
        self.whole = settings.smtp_deadline
        self.max_reply = settings.smtp_max_reply
        self.step_due = self.deadline = self.held_at = 0.0
        self.received = 0

    def start(self) -> None:
        current = time.monotonic()
        self.deadline, self.step_due = current + self.whole, current + self.step
        self.held_at, self.received = 0.0, 0

    def heard(self, octets: int) -> str:
        """The server sent ``octets``; why the transaction must end, or ""."""
        self.step_due = time.monotonic() + self.step
        self.received += octets
        if self.received > self.max_reply:
            return smtp.said_too_much(self.max_reply)
        return ""

    def hold(self) -> None:
        if not self.held_at:
            self.held_at = time.monotonic()

    def resume(self) -> None:
        if self.held_at:
            current = time.monotonic()
            self.deadline += current - self.held_at
            self.step_due, self.held_at = current + self.step, 0.0

    def passed(self, current: float) -> tuple[str, float]:
        """("deadline" or "step", 0) for a limit passed, else ("", when the next one is due)."""
        if self.held_at:
            return "", 0.0
        if current >= self.deadline:
            return "deadline", 0.0
        if current >= self.step_due:
            return "step", 0.0
        return "", min(self.deadline, self.step_due)


class Turns:
    """The transactions of one connection in the order the server answers them, and the
    limits the one under way runs under: at most one is queued behind the current one's
    released final dot (RFC 2920 lets message content open a pipelined group). No I/O."""

    def __init__(self, settings: Settings, where: str) -> None:
        self.limits = Limits(settings)
        self.where = where
        self.replies = Replies()
        self.current: Transaction | None = None
        self.queued: Transaction | None = None

    def hear(self, data: bytes) -> list[tuple[int, str]]:
        """The replies in what the server sent; SmtpError when it broke a rule."""
        if why := self.limits.heard(len(data)):
            raise _too_slow(self.where, why)
        return self.replies.feed(data)

    def start(self, transaction: Transaction) -> bytes:
        assert self.current is None
        self.current = transaction
        self.limits.start()
        return transaction.first()

    def release(self, then: Transaction | None = None) -> bytes:
        """The current one's held dot, and ``then``'s commands behind it."""
        assert self.current is not None and self.queued is None
        self.limits.resume()
        out = self.current.release()
        if then is not None:
            # The duplicate bound rests on this: behind a dot that went, and held in turn.
            if not (out and then.pipelining and then.hold):
                raise RuntimeError("a queued transaction goes behind a released dot, held")
            self.queued = then
            out += then.first()
        return out

    def feed(self, code: int, text: str) -> tuple[bytes, Transaction | None]:
        """Give a reply to the current transaction: what to write, and the transaction
        when this reply ended it (the queued one is current then, unless the session must
        close: it stays queued, for ``drain`` to end)."""
        current = self.current
        assert current is not None
        out = current.feed(code, text)
        if out is not None:
            if current.awaiting_dot:
                self.limits.hold()
            return out, None
        self.current = None
        if not current.close_session and self.queued is not None:
            self.current, self.queued = self.queued, None
            self.limits.start()
        return b"", current

    @property
    def awaiting_dot(self) -> bool:
        return self.current is not None and self.current.awaiting_dot

    def drain(self) -> list[Transaction]:
        """Every transaction still without its verdict, in order; none is left."""
        left = [t for t in (self.current, self.queued) if t is not None]
        self.current = self.queued = None
        return left


class Session:
    """One connection: ``open`` (a login on its own thread), then ``send`` one transaction at
    a time, or queue the next behind a released dot (``release``); the outcome of each comes
    back as an ``Event`` from the loop's ``poll``, in order."""

    def __init__(self, settings: Settings, loop: Loop) -> None:
        self.settings = settings
        self.loop = loop
        self.state = "closed"  # closed | opening | idle | busy
        self.pipelining = False
        self._login = smtp.Connection(settings)
        self.where = self._login.where
        self._wire: Wire | None = None
        self._turns = Turns(settings, self.where)  # a new one for each connection

    @property
    def awaiting_dot(self) -> bool:  # all but the held final dot is out (see ``release``)
        return self.state == "busy" and self._turns.awaiting_dot

    @property
    def can_queue(self) -> bool:
        """``release`` can send the next transaction's commands with the dot."""
        return self.pipelining and self.awaiting_dot and self._turns.queued is None

    def open(self) -> None:
        assert self.state == "closed"
        self.state, self.pipelining = "opening", False  # the new login says again
        self._login = smtp.Connection(self.settings)  # an aborted one stays aborted
        threading.Thread(target=_log_in, args=(self, self._login), daemon=True).start()

    def attach(self, sock: socket.socket) -> None:
        """From the loop's thread: the logged-in socket joins the loop."""
        self._wire, self.state = Wire(sock, self.loop.selector, self), "idle"
        self._turns = Turns(self.settings, self.where)

    def send(self, sender: str, recipient: str, stuffed: bytes, *, hold: bool = False) -> None:
        """Start one transaction; ``stuffed`` is the dot-stuffed message with its final dot,
        which with ``hold`` waits for ``release``."""
        assert self.state == "idle"
        transaction = Transaction(
            sender, recipient, stuffed, pipelining=self.pipelining, where=self.where, hold=hold
        )
        self.state = "busy"
        self._write(self._turns.start(transaction))

    def release(self, then: tuple[str, str, bytes] | None = None) -> bool:
        """The held final dot may go (its wait counts against no limit); with ``then`` (as
        for ``send``, held) and ``can_queue``, the next transaction's commands go in the
        same write, one round trip less. Whether ``then`` went."""
        if self.state != "busy":
            return False
        queued = None
        if then is not None and self.can_queue:
            queued = Transaction(*then, pipelining=True, where=self.where, hold=True)
        self._write(self._turns.release(queued))
        return queued is not None

    def abort(self) -> None:
        """End at once: a transaction under way fails as stopped, a login is cut short."""
        self._fail(smtp.ConnectionFailed(f"stopped talking to SMTP server {self.where}"))

    def close(self, *, polite: bool = True) -> None:
        if self.state == "opening":
            self._login.abort()  # its socket is closed when the login reports back
        wire, self._wire = self._wire, None
        polite = polite and self.state == "idle"  # mid-DATA a QUIT would be message text
        if self.state != "opening":
            self.state = "closed"
        self._turns = Turns(self.settings, self.where)  # no limit of the old one lingers
        if wire is not None:
            wire.close(b"QUIT\r\n" if polite else b"")

    # --- from the loop ---

    def readable(self) -> None:
        assert self._wire is not None
        try:
            data = self._wire.read()
        except OSError as exc:
            self._fail(dropped=str(exc))
            return
        if data is None:
            return
        if self.state != "busy":
            self.close(polite=False)  # an idle session's server spoke (a goodbye): done
            return
        try:
            replies = self._turns.hear(data)
        except SmtpError as exc:
            self._fail(exc)
            return
        self._take(replies)

    def _take(self, replies: list[tuple[int, str]]) -> None:
        for index, (code, text) in enumerate(replies):
            out, ended = self._turns.feed(code, text)
            if out:
                self._write(out)
                if self._wire is None:
                    return  # the write failed: ``_fail`` ended every turn, none is left
            if ended is None:
                continue
            self.loop.events.append(Event.ended(self, ended, ended.error))
            if ended.close_session:  # a 421, or out of step
                self._fail(dropped="the session ended")
                return
            if self._turns.current is not None:  # the queued one: its replies follow
                continue
            self.state = "idle"
            if index < len(replies) - 1:  # replies nobody asked for: out of step
                self.close(polite=False)
            return

    def writable(self) -> None:
        self._write(b"")

    def check_time(self, current: float) -> float:
        """Fail a transaction past its limits; the time of its next limit (0: none)."""
        limits = self._turns.limits
        passed, due = limits.passed(current) if self.state == "busy" else ("", 0.0)
        if passed == "deadline":
            self._fail(_too_slow(self.where, smtp.past_deadline(limits.whole)))
        elif passed == "step":
            self._fail(dropped="timed out")
        return due

    # --- inside ---

    def _write(self, data: bytes) -> None:
        if self._wire is None:
            return
        try:
            self._wire.write(data) if data else self._wire.flush()
        except OSError as exc:
            self._fail(dropped=str(exc))

    def _fail(self, error: SmtpError | None = None, *, dropped: str = "") -> None:
        """End the transaction under way with ``error`` (a dropped connection: with the
        failure already known, else a temporary one), hand the one queued behind its dot
        back unsent, and close the session."""
        queued = self._turns.queued
        for transaction in self._turns.drain():
            if transaction is queued:
                self.loop.events.append(Event(self, unsent=True))
                continue
            if dropped:
                lost = TemporaryFailure(f"connection to {self.where} dropped: {dropped}")
                error = transaction.known_failure or lost
            self.loop.events.append(Event.ended(self, transaction, error))
        self.close(polite=False)


def _too_slow(where: str, why: str) -> smtp.ConnectionFailed:
    # The server, not the message: no message of this send would fare better through it.
    return smtp.ConnectionFailed(f"SMTP server {where} {why}")


def _log_in(session: Session, connection: smtp.Connection) -> None:
    """On a thread of its own: connect, greet, STARTTLS, AUTH; the loop hears the outcome."""
    try:
        connection.open()
        session.pipelining = connection.pipelining
        sock = connection.detach()
    except SmtpError as exc:
        session.loop.logged_in(session, None, exc)
    except BaseException as exc:  # the loop must always hear back
        session.loop.logged_in(session, None, smtp.ConnectionFailed(f"login failed: {exc!r}"))
    else:
        session.loop.logged_in(session, sock, None)


class Loop:
    """The selector all sessions share, and the events they produced since the last poll."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.events: list[Event] = []
        self._logins: queue.SimpleQueue[tuple[Session, socket.socket | None, SmtpError | None]]
        self._logins = queue.SimpleQueue()
        self._closing = threading.Lock()
        self._closed = False
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self.selector.register(self._wake_in, selectors.EVENT_READ, None)

    def logged_in(
        self, session: Session, sock: socket.socket | None, error: SmtpError | None
    ) -> None:
        """From a login thread: its outcome, for the loop's thread to take in."""
        with self._closing:
            if self._closed:
                if sock is not None:
                    sock.close()  # the send ended while this login was under way
                return
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
        with self._closing:
            self._closed = True
        while not self._logins.empty():
            sock = self._logins.get_nowait()[1]
            if sock is not None:
                sock.close()
        self.selector.close()
        self._wake_in.close()
        self._wake_out.close()
