"""Shared fixtures: a real SQLite file, the CLI runner, a real SMTP server, headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.config import Settings, load_settings
from newsletter.store.db import open_db

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"  # screenshots and other things a developer may look at

TEST_CONFIG = """\
database = "subscribers.db"
base_url = "https://uutiskirje.example.fi"
default_lang = "fi"
secret = "test-secret-not-for-production"

[organisation]
name = "Esimerkkisäätiö"
address = "Esimerkkikatu 1, 00100 Helsinki"
website = "https://www.example.fi"
email = "info@example.fi"

[mail]
from = "Esimerkkisäätiö <uutiskirje@example.fi>"
reply_to = "info@example.fi"

[send]
rate = 1000
concurrency = 2
batch_size = 50
retry_base = 0.05   # keep back-off short in tests
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a test newsletter.toml; the process runs inside it."""
    (tmp_path / "newsletter.toml").write_text(TEST_CONFIG, encoding="utf-8")
    (tmp_path / "newsletter.toml").chmod(0o600)  # it holds the link secret
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def settings(workdir: Path) -> Settings:
    return load_settings(workdir / "newsletter.toml")


@pytest.fixture
def db(settings: Settings):
    database = open_db(settings.db)
    yield database
    database.close()


@dataclass
class Cli:
    workdir: Path
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, input: str | None = None, env: dict | None = None):
        from newsletter.cli import app

        return self.runner.invoke(
            app,
            ["--config", str(self.workdir / "newsletter.toml"), *args],
            input=input,
            env=env,
            catch_exceptions=False,
        )

    def ok(self, *args: str, **kwargs):
        result = self(*args, **kwargs)
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
        return result


# `send` refuses init's example organisation, address and From (TEST_CONFIG keeps them for
# the golden files): the command line runs as an organisation that has set its own.
OWN_IDENTITY = {
    "NEWSLETTER_ORG_NAME": "Testisäätiö",
    "NEWSLETTER_ORG_ADDRESS": "Testikatu 2, 00100 Helsinki",
    "NEWSLETTER_FROM": "Testisäätiö <uutiskirje@example.fi>",
}


@pytest.fixture
def cli(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run the CLI in-process against the test config: ``cli.ok("topics", "list")``."""
    for name, value in OWN_IDENTITY.items():
        monkeypatch.setenv(name, value)
    return Cli(workdir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


class SmtpSink:
    """A real aiosmtpd server on loopback that keeps every message it accepts.

    ``reply`` may be set to a function (envelope) -> str | None to inject SMTP replies
    such as ``"451 try again"`` or ``"550 no such user"``.
    """

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.reply = None
        self.port = free_port()
        self.host = "127.0.0.1"
        self.controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server, session, envelope):
        if self.reply is not None:
            answer = self.reply(envelope)
            if answer:
                return answer
        with self.lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 OK"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if address in m.rcpt_tos]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need_tool(name: str, why: str) -> str:
    """The path of a command-line tool a test needs. Missing, it skips the test on a
    developer's machine but fails it in CI (``CI=true``), where `make test` installs it."""
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not installed ({why}): `make test` installs it")
    pytest.skip(f"{name} is not installed ({why})")


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Debian chromium is not installed: run `make test`, which installs it")
    return found


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
