"""Sample data for the send tests: a topic, its subscribers and an edition row."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from email.message import EmailMessage

from conftest import SmtpSink
from sqlite_utils import Database

from newsletter.audience import subscribers
from newsletter.clock import now_iso
from newsletter.content import topics
from newsletter.mail import placeholders

SUBJECT = "Vaikuttavuus-uutiskirje: syksyn hankkeet ja äänestys"

HTML = """\
<!DOCTYPE html>
<html lang="fi"><head><meta charset="utf-8"><title>Uutiskirje</title></head>
<body>
<p>Hei %%NAME%%,</p>
<h1>Yhteisövaikuttavuus – syksy 2025</h1>
<p>Säätiö myönsi 1,2 miljoonaa euroa kolmelle hankkeelle &amp; kumppaneille.</p>
<p><a href="https://www.example.fi/ajankohtaista/hankkeet">Lue lisää</a></p>
<p style="font-size:12px">Et halua enää näitä viestejä?
<a href="%%UNSUBSCRIBE_URL%%">Peru tilaus</a> ·
<a href="%%PREFERENCES_URL%%">Muuta asetuksia</a></p>
</body></html>
"""

TEXT = """\
Hei %%NAME%%,

Yhteisövaikuttavuus – syksy 2025

Säätiö myönsi 1,2 miljoonaa euroa kolmelle hankkeelle & kumppaneille.
Lue lisää: https://www.example.fi/ajankohtaista/hankkeet

Peru tilaus: %%UNSUBSCRIBE_URL%%
Muuta asetuksia: %%PREFERENCES_URL%%
"""


def make_topic(db: Database, slug: str = "vaikuttavuus", name: str = "Vaikuttavuus") -> int:
    return topics.add_topic(db, slug, name).id


def add_people(
    db: Database, topic_id: int, count: int, *, prefix: str = "lukija", names: bool = True
) -> list[str]:
    """``count`` confirmed subscribers of the topic; their addresses in id order."""
    emails = []
    for number in range(count):
        email = f"{prefix}{number:05d}@example.org"
        subscribers.add(
            db,
            email,
            name=f"Lukija Numero {number}" if names else None,
            topic_ids=[topic_id],
            status="confirmed",
        )
        emails.append(email)
    return emails


def make_edition(
    db: Database,
    topic_ids: list[int],
    *,
    subject: str = SUBJECT,
    html: str = HTML,
    text: str = TEXT,
) -> int:
    """An edition row as the builder would store it: holes sealed with its own marker
    (``html`` and ``text`` are written with the legacy ``%%NAME%%`` form)."""
    stamp = now_iso()
    holes = placeholders.Holes.new()
    html, text = (placeholders.LEGACY.fill(body, _sealed(holes)) for body in (html, text))
    with db.atomic():
        cursor = db.execute(
            "INSERT INTO editions (subject, lang, template, html, text, status, created, updated,"
            " hole_marker) VALUES (?, 'fi', 'default', ?, ?, 'draft', ?, ?, ?)",
            [subject, html, text, stamp, stamp, holes.marker],
        )
        edition_id = int(cursor.lastrowid)
        for topic_id in topic_ids:
            db.execute(
                "INSERT INTO edition_topics (edition_id, topic_id) VALUES (?, ?)",
                [edition_id, topic_id],
            )
    return edition_id


def _sealed(holes: placeholders.Holes) -> dict[str, str]:
    return {name: holes.hole(name) for name in placeholders.NAMES}


def delivery_rows(db: Database, edition_id: int) -> list[dict]:
    return list(
        db.query(
            "SELECT d.*, s.email FROM deliveries d LEFT JOIN subscribers s"
            " ON s.id = d.subscriber_id WHERE d.edition_id = ? ORDER BY d.id",
            [edition_id],
        )
    )


def parts(msg: EmailMessage) -> tuple[str, str]:
    """(text, html) bodies of a multipart/alternative message."""
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


class FaultySink(SmtpSink):
    """The conftest sink plus ``fault(server, envelope)``: may return a reply such as
    ``"451 4.3.0 later"``, or ``"drop"`` to cut the connection in the middle of DATA;
    and ``rcpt_fault(address)``: a reply that refuses RCPT TO for that address."""

    def __init__(self) -> None:
        super().__init__()
        self.fault = None
        self.rcpt_fault = None
        self.attempts: dict[str, int] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.rcpt_fault(address) if self.rcpt_fault is not None else None
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.attempts[rcpt] = self.attempts.get(rcpt, 0) + 1
        if self.fault is not None:
            answer = self.fault(server, envelope)
            if answer == "drop":
                server.transport.close()
                return "421 4.4.2 connection dropped"
            if answer:
                return answer
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def faulty_sink() -> Iterator[FaultySink]:
    sink = FaultySink()
    sink.controller.start()
    try:
        yield sink
    finally:
        sink.controller.stop()
