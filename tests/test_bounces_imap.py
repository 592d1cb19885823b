"""`bounces import --imap` against a real Dovecot started here (TLS on a loopback port, a
self-signed certificate made for the test), with DSNs and ARF reports in real shapes."""

from __future__ import annotations

import imaplib
import json
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import bounce_fixtures as fx
import pytest
from imap_server import Dovecot, require_dovecot

from newsletter.audience import subscribers

PASSWORD = "imap-salasana-123"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    require_dovecot()
    # Its own folder, not pytest's: Dovecot's unprivileged processes must pass through it.
    folder = Path(tempfile.mkdtemp(prefix="nl-dovecot-"))
    server = Dovecot(folder, "bounces", PASSWORD)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _env(server: Dovecot, **changes: str) -> dict[str, str]:
    env = {
        "NEWSLETTER_IMAP_HOST": "127.0.0.1",
        "NEWSLETTER_IMAP_PORT": str(server.port),
        "NEWSLETTER_IMAP_USERNAME": "bounces",
        "NEWSLETTER_IMAP_PASSWORD": PASSWORD,
        "NEWSLETTER_IMAP_CA_FILE": str(server.cert),
    }
    env.update(changes)
    return env


def test_imap_import_reads_every_shape_once_and_leaves_the_mailbox_alone(
    db,
    settings,
    smtp_sink,
    dovecot: Dovecot,
    cli,
) -> None:
    _, _, envelope = fx.deliver_with_verp(db, settings, smtp_sink)
    people = sorted(envelope)
    for number, data in enumerate(fx.all_shapes(envelope, people)):
        dovecot.deliver(f"m{number}", data)
    dovecot.start()

    first = json.loads(cli.ok("bounces", "import", "--imap", "--json", env=_env(dovecot)).stdout)
    assert first["messages"] == 10
    assert (first["hard_bounces"], first["soft_bounces"], first["complaints"]) == (4, 2, 2)
    assert len(first["not_reports"]) == 1 and first["unmatched"] == 1
    assert subscribers.find(db, people[0])["status"] == "bounced"

    again = json.loads(cli.ok("bounces", "import", "--imap", "--json", env=_env(dovecot)).stdout)
    assert again["duplicates"] == 8 and again["hard_bounces"] == 0

    # Read-only: nothing deleted, nothing marked seen (a person still reads the others).
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", dovecot.port, ssl_context=ssl.create_default_context(cafile=dovecot.cert)
    )
    client.login("bounces", PASSWORD)
    client.select("INBOX", readonly=True)
    assert len(client.uid("SEARCH", "ALL")[1][0].split()) == 10
    assert client.uid("SEARCH", "SEEN")[1][0] == b""
    client.logout()


def test_imap_problems_are_one_line_without_the_password(db, dovecot: Dovecot, cli) -> None:
    dovecot.start()
    wrong = cli("bounces", "import", "--imap", env=_env(dovecot, NEWSLETTER_IMAP_PASSWORD="x"))
    assert wrong.exit_code == 1
    [line] = wrong.stderr.strip().splitlines()
    assert line.startswith("error: IMAP server") and "refused the login" in line
    # Without the test CA the self-signed certificate is not trusted: no login is tried.
    untrusted = cli("bounces", "import", "--imap", env=_env(dovecot, NEWSLETTER_IMAP_CA_FILE=""))
    assert untrusted.exit_code == 1 and "certificate" in untrusted.stderr
    for result in (wrong, untrusted):
        assert PASSWORD not in result.output and "Traceback" not in result.output
