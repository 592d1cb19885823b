"""Deadlines and reply caps for whole SMTP transactions, and no password in clear text."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from newsletter.config import Settings
from newsletter.mail import smtp

MESSAGE = b"From: a@example.fi\r\nTo: b@example.fi\r\nSubject: hei\r\n\r\nTerve\r\n"


class RawServer:
    """A hand-written SMTP server on loopback: ``script(conn)`` speaks for it, so it can drip
    one byte at a time or talk without end, as broken or hostile servers do."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.stop = threading.Event()
        self.accepted = threading.Event()  # a client connected
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted.set()
            with conn, contextlib.suppress(OSError):
                self.script(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


def drip(conn: socket.socket, text: bytes, stop: threading.Event, pause: float = 0.3) -> None:
    for byte in text:
        if stop.is_set():
            return
        conn.sendall(bytes([byte]))
        time.sleep(pause)


def _lines(conn: socket.socket) -> Iterator[bytes]:
    buffer = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\r\n" in buffer:
            line, buffer = buffer.split(b"\r\n", 1)
            yield line


def drip_greeting(conn: socket.socket, stop: threading.Event) -> None:
    drip(conn, b"220 slow.example ESMTP here we go, slowly\r\n", stop)


def drip_after_data(conn: socket.socket, stop: threading.Event) -> None:
    """Fast until the message is in, then the final reply one byte at a time."""
    conn.sendall(b"220 ok\r\n")
    in_data = False
    for line in _lines(conn):
        if in_data:
            if line == b".":
                drip(conn, b"250 2.0.0 queued as 12345, eventually\r\n", stop)
                return
            continue
        verb = line[:4].upper()
        if verb == b"EHLO":
            conn.sendall(b"250-slow.example\r\n250 8BITMIME\r\n")
        elif verb == b"DATA":
            in_data = True
            conn.sendall(b"354 go on\r\n")
        elif verb == b"QUIT":
            conn.sendall(b"221 bye\r\n")
            return
        else:
            conn.sendall(b"250 ok\r\n")


def endless_ehlo(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"220 ok\r\n")
    conn.recv(1024)
    while not stop.is_set():
        conn.sendall(b"250-" + b"X" * 1000 + b"\r\n")


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Callable) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _settings(settings: Settings, port: int, **changes) -> Settings:
    values = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_timeout": 5.0}
    values.update(changes)
    return settings.with_overrides(**values)


def test_a_drip_fed_greeting_ends_at_the_deadline(settings: Settings, raw_server) -> None:
    server = raw_server(drip_greeting)
    # Each byte comes well within the 5 s step timeout: only the deadline can end this.
    conn = smtp.Connection(_settings(settings, server.port, smtp_deadline=1.0))
    with pytest.raises(smtp.ConnectionFailed, match=r"within 1 s \(smtp\.deadline\)"):
        conn.open()
    assert conn._smtp is None


def test_a_drip_fed_reply_after_data_ends_at_the_deadline(settings: Settings, raw_server) -> None:
    server = raw_server(drip_after_data)
    conn = smtp.Connection(_settings(settings, server.port, smtp_deadline=1.5))
    with conn, pytest.raises(smtp.ConnectionFailed, match=r"smtp\.deadline") as caught:
        conn.send("a@example.fi", "b@example.fi", MESSAGE)
    assert str(server.port) in str(caught.value)


def test_a_server_that_never_stops_talking_hits_the_reply_cap(
    settings: Settings, raw_server
) -> None:
    server = raw_server(endless_ehlo)
    conn = smtp.Connection(_settings(settings, server.port, smtp_max_reply=8192))
    with pytest.raises(smtp.ConnectionFailed, match=r"more than 8192 octets.*smtp\.max_reply"):
        conn.open()


def test_abort_from_another_thread_ends_a_stuck_transaction(settings: Settings, raw_server) -> None:
    server = raw_server(drip_after_data)
    conn = smtp.Connection(_settings(settings, server.port, smtp_deadline=600))
    conn.open()
    outcome: list[BaseException] = []

    def send() -> None:
        try:
            conn.send("a@example.fi", "b@example.fi", MESSAGE)
        except BaseException as exc:  # recorded for the assertion below
            outcome.append(exc)

    worker = threading.Thread(target=send)
    worker.start()
    time.sleep(0.5)  # let it reach the drip
    conn.abort()
    worker.join(30)
    assert not worker.is_alive()
    assert isinstance(outcome[0], smtp.ConnectionFailed)
    assert "stopped" in str(outcome[0])


def test_auth_without_tls_off_loopback_is_refused_before_connecting(settings: Settings) -> None:
    # 192.0.2.1 (TEST-NET-1) would hang if it were contacted: the refusal comes first.
    unsafe = settings.with_overrides(
        smtp_host="192.0.2.1", smtp_username="news", smtp_password="salasana", smtp_timeout=30
    )
    with pytest.raises(smtp.ConnectionFailed) as caught:
        smtp.Connection(unsafe).open()
    text = str(caught.value)
    assert "smtp.security" in text and "\n" not in text
    assert "salasana" not in text
    # With TLS, or on loopback, the login is allowed to go ahead.
    smtp.refuse_clear_text_login(unsafe.with_overrides(smtp_security="starttls"))
    smtp.refuse_clear_text_login(unsafe.with_overrides(smtp_host="127.0.0.1"))
