"""``newsletter unsubscribes import``: requests mailed to the List-Unsubscribe ``mailto:``."""

from __future__ import annotations

import itertools
import json
import mailbox
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from newsletter import links, tokens
from newsletter.audience import subscribers
from newsletter.content import topics
from newsletter.delivery.mailbox_unsubscribe import import_unsubscribes
from newsletter.store.db import token_key

MAILBOX = "unsubscribe@example.fi"
_serial = itertools.count(1)


@pytest.fixture
def readers(db, settings):
    """Three readers, one of them later erased, and the mailto links their mails carried."""
    impact = topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus").id
    young = topics.add_topic(db, "lapset-ja-nuoret", "Lapset ja nuoret").id
    key = token_key(db, settings.secret)
    people = {}
    for email, topic_ids in (
        ("liisa@example.fi", [impact]),
        ("matti@example.fi", [impact, young]),
        ("pekka@example.fi", [young]),
        ("poistettu@example.fi", [impact]),
    ):
        people[email] = subscribers.add(db, email, topic_ids=topic_ids).subscriber_id
    mailto = {
        (email, tid): links.unsubscribe_mailto(settings, key, people[email], tid)
        for email, tid in (
            ("liisa@example.fi", impact),
            ("matti@example.fi", impact),
            ("matti@example.fi", young),
            ("pekka@example.fi", young),
            ("poistettu@example.fi", impact),
        )
    }
    subscribers.erase(db, "poistettu@example.fi")
    return {"impact": impact, "young": young, "ids": people, "mailto": mailto}


def request_mail(sender: str, mailto: str, *, subject: str | None = None, body: str = "") -> bytes:
    """The message a mail client writes when the reader clicks the mailto: link."""
    parts = urlsplit(mailto)
    assert parts.scheme == "mailto" and parts.path == MAILBOX
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = parts.path
    msg["Subject"] = subject if subject is not None else parse_qs(parts.query)["subject"][0]
    msg["Message-ID"] = f"<request-{next(_serial)}@mail.example.com>"
    msg.set_content(body or "Lähetetty puhelimesta")
    return msg.as_bytes()


def token_of(mailto: str) -> str:
    return parse_qs(urlsplit(mailto).query)["subject"][0].split()[1]


def build_requests(readers) -> list[bytes]:
    m = readers["mailto"]
    impact, young = readers["impact"], readers["young"]
    good = token_of(m[("liisa@example.fi", impact)])
    body_mac = good.split(".")[1]
    html = EmailMessage()
    html["From"] = "pekka@example.fi"
    html["To"] = MAILBOX
    html["Subject"] = "Peruutus"
    html["Message-ID"] = "<html-only@example.fi>"
    html.set_content(
        f"<p>unsubscribe <b>{token_of(m[('pekka@example.fi', young)])}</b></p>", subtype="html"
    )
    return [
        # The usual case: the subject as the link set it.
        request_mail("liisa@example.fi", m[("liisa@example.fi", impact)]),
        # A client that dropped the subject: the token is in the body.
        request_mail(
            "matti@example.fi",
            m[("matti@example.fi", impact)],
            subject="Re: Yhteisövaikuttavuus 15.08.2025",
            body=f"Hei,\n\nunsubscribe {token_of(m[('matti@example.fi', impact)])}\n\nMatti",
        ),
        # A client that left the subject percent-encoded.
        request_mail(
            "matti@example.fi",
            m[("matti@example.fi", young)],
            subject=quote("unsubscribe " + token_of(m[("matti@example.fi", young)])),
        ),
        html.as_bytes(),
        # A forged token (right shape, wrong MAC) and an ordinary reply without one.
        request_mail(
            "huijari@example.com",
            m[("liisa@example.fi", impact)],
            subject=f"unsubscribe 2-1.{body_mac[::-1]}",
        ),
        request_mail(
            "matti@example.fi",
            m[("matti@example.fi", impact)],
            subject="Kiitos uutiskirjeestä!",
            body="Hyvä juttu Keski-Suomesta.",
        ),
        # The same request again, and one from a person who has since been erased.
        request_mail("liisa@example.fi", m[("liisa@example.fi", impact)], body="uudestaan"),
        request_mail("poistettu@example.fi", m[("poistettu@example.fi", impact)]),
        # Not a mail at all.
        b"\x00\xff\xfe garbage without headers",
    ]


def write_maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(str(path), create=True)
    for data in messages:
        box.add(data)
    box.close()
    return path


def status(db, subscriber_id: int, topic_id: int) -> str:
    row = db.execute(
        "SELECT status FROM subscriptions WHERE subscriber_id = ? AND topic_id = ?",
        [subscriber_id, topic_id],
    ).fetchone()
    return row[0]


def test_maildir_import_applies_verified_requests(cli, db, readers, workdir) -> None:
    maildir = write_maildir(workdir / "Maildir", build_requests(readers))
    result = cli.ok("unsubscribes", "import", str(maildir), "--json")
    report = json.loads(result.stdout)
    assert {k: v for k, v in report.items() if k != "problems"} == {
        "messages": 9,
        "applied": 4,
        "already_unsubscribed": 1,
        "unknown": 1,
        "invalid": 3,
    }
    reasons = sorted(p["reason"] for p in report["problems"])
    assert reasons[0] == "forged or altered token"
    assert "no unsubscribe token" in reasons
    ids, impact, young = readers["ids"], readers["impact"], readers["young"]
    assert status(db, ids["liisa@example.fi"], impact) == "unsubscribed"
    assert status(db, ids["matti@example.fi"], impact) == "unsubscribed"
    assert status(db, ids["matti@example.fi"], young) == "unsubscribed"
    assert status(db, ids["pekka@example.fi"], young) == "unsubscribed"
    sources = [r[0] for r in db.execute("SELECT source FROM events WHERE action = 'unsubscribe'")]
    assert sources == ["mailto"] * 4
    for email in ids:  # the report names no addresses
        assert email not in result.stdout

    again = json.loads(cli.ok("unsubscribes", "import", str(maildir), "--json").stdout)
    assert (again["applied"], again["already_unsubscribed"], again["invalid"]) == (0, 5, 3)
    assert db.execute("SELECT COUNT(*) FROM events WHERE action = 'unsubscribe'").fetchone()[0] == 4


def test_forged_token_changes_nothing(db, settings, readers, workdir) -> None:
    liisa = readers["ids"]["liisa@example.fi"]
    other_key = tokens.make(b"not the key" * 3, links.UNSUBSCRIBE, liisa, readers["impact"])
    maildir = write_maildir(
        workdir / "forged",
        [
            request_mail(
                "x@example.com",
                readers["mailto"][("liisa@example.fi", readers["impact"])],
                subject=f"unsubscribe {other_key}",
            )
        ],
    )
    report = import_unsubscribes(db, settings, maildir)
    assert (report.applied, report.invalid) == (0, 1)
    assert status(db, liisa, readers["impact"]) == "confirmed"


def test_mbox_import_prints_a_summary(cli, db, readers, workdir) -> None:
    path = workdir / "unsubscribe.mbox"
    box = mailbox.mbox(str(path), create=True)
    for data in build_requests(readers)[:3]:
        box.add(data)
    box.close()
    result = cli.ok("unsubscribes", "import", str(path))
    assert "3 messages: 3 applied, 0 already unsubscribed, 0 unknown (erased), 0 invalid" in (
        result.stdout
    )


@pytest.mark.parametrize("kind", ["missing", "plain-folder", "text-file"])
def test_not_a_mailbox_is_a_one_line_error(cli, workdir, kind) -> None:
    path = workdir / kind
    if kind == "plain-folder":
        path.mkdir()
    elif kind == "text-file":
        path.write_text("email,name\nliisa@example.fi,Liisa\n", encoding="utf-8")
    result = cli("unsubscribes", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
