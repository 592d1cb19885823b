"""Feed downloads have a deadline for the whole answer and a size cap: a server that drips
bytes (in the headers or the body) or sends too much ends in one clear line."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

FEED = (Path(__file__).parent / "data" / "intake" / "atom.xml").read_bytes()


class Dripper:
    """A loopback HTTP server written on a bare socket, so it can answer as slowly as it likes."""

    def __init__(self, answer: bytes, *, head_bytes: int, every: float) -> None:
        self.answer, self.head_bytes, self.every = answer, head_bytes, every
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/feed.xml"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request
            try:
                conn.sendall(self.answer[: self.head_bytes])  # quickly, then a byte at a time
                for byte in self.answer[self.head_bytes :]:
                    if self.stop.wait(self.every):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:  # the client hung up: what the deadline is for
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.listener.close()


def http_answer(body: bytes, length: int | None = None) -> bytes:
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/atom+xml\r\nConnection: close\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return head.encode() + b"\r\n" + body


@pytest.fixture
def drip() -> Iterator[list[Dripper]]:
    servers: list[Dripper] = []
    yield servers
    for server in servers:
        server.close()


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_drip_feeding_server_ends_at_the_deadline(cli, db, drip, monkeypatch, where) -> None:
    answer = http_answer(FEED, len(FEED))
    head = answer.index(b"\r\n\r\n") + 4 + 50 if where == "body" else 20
    server = Dripper(answer, head_bytes=head, every=0.05)
    drip.append(server)
    monkeypatch.setenv("NEWSLETTER_DOWNLOAD_DEADLINE", "1")
    started = time.monotonic()
    result = cli("articles", "import", server.url)
    waited = time.monotonic() - started
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {server.url}: download not finished within the 1 s deadline"
        " (intake.download_deadline)"
    )
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0
    assert waited < 30  # the drip alone would take minutes; not a timing assertion on speed


def test_a_download_larger_than_the_cap_is_refused(cli, db, drip, monkeypatch) -> None:
    big = FEED.replace(b"</feed>", b"<!--" + b"x" * 40_000 + b"--></feed>")
    announced = Dripper(http_answer(big, len(big)), head_bytes=len(big) + 200, every=0)
    unannounced = Dripper(http_answer(big), head_bytes=len(big) + 200, every=0)
    drip.extend([announced, unannounced])
    monkeypatch.setenv("NEWSLETTER_MAX_DOWNLOAD_MB", "0.01")
    for server in (announced, unannounced):
        result = cli("articles", "import", server.url)
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            f"error: {server.url}: larger than 0.01 MB (intake.max_download_mb)"
        )
    monkeypatch.setenv("NEWSLETTER_MAX_DOWNLOAD_MB", "1")
    assert cli.ok("articles", "import", announced.url).stdout.startswith(
        f"{announced.url}: imported 2"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("NEWSLETTER_DOWNLOAD_DEADLINE", "0", "must be above 0 (seconds)"),
        ("NEWSLETTER_MAX_DOWNLOAD_MB", "-1", "must be above 0 (megabytes)"),
        ("NEWSLETTER_DOWNLOAD_DEADLINE", "soon", "expected a number, got 'soon'"),
    ],
)
def test_download_settings_are_checked(cli, monkeypatch, variable, value, message) -> None:
    monkeypatch.setenv(variable, value)
    result = cli("articles", "import", "https://www.example.fi/feed/")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {variable}: {message}"
