"""A topic's contact people: the "Lisätietoja" block under an edition's stories.

Configured per topic with ``newsletter topics contact-add``; every edition of the topic shows
them (name, title in the edition's language and in English, email, phone), in the order added.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from email_validator import EmailNotValidError, validate_email
from sqlite_utils import Database

from newsletter.clock import now_iso
from newsletter.content.topics import resolve
from newsletter.errors import NewsletterError, NotFound
from newsletter.store.db import immediate

MAX_FIELD = 200
_PHONE_CHARS = set("+0123456789 -()/")


@dataclass(frozen=True)
class Contact:
    id: int
    name: str
    title: str
    title_en: str
    email: str
    phone: str
    topic: str = ""  # the topic's name, shown under the titles as on the organisation's pages

    def as_json(self) -> dict:
        return asdict(self)


_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _clean(value: str, what: str) -> str:
    # One line of plain text: a newline would break the text part's layout, and control
    # characters show as nothing (or break the MJML parser).
    text = " ".join(_CONTROLS.sub(" ", value or "").split())
    if len(text) > MAX_FIELD:
        raise NewsletterError(f"the contact's {what} is longer than {MAX_FIELD} characters")
    return text


def _check_email(email: str) -> str:
    if not email:
        return ""
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise NewsletterError(f"the contact's email {email!r} is not an address: {exc}") from None


def _check_phone(phone: str) -> str:
    if phone and not set(phone) <= _PHONE_CHARS:
        raise NewsletterError(f"the contact's phone {phone!r} may hold digits, spaces, + - ( ) /")
    return phone


def add(
    db: Database,
    topic: str,
    *,
    name: str,
    title: str = "",
    title_en: str = "",
    email: str = "",
    phone: str = "",
) -> Contact:
    """Add a contact person to ``topic`` (slug or name); they are shown last."""
    clean_name = _clean(name, "name")
    if not clean_name:
        raise NewsletterError("a contact needs a name")
    values = {
        "name": clean_name,
        "title": _clean(title, "title"),
        "title_en": _clean(title_en, "English title"),
        "email": _check_email(_clean(email, "email")),
        "phone": _check_phone(_clean(phone, "phone")),
    }
    with immediate(db):
        found = resolve(db, topic)
        position = db.execute(
            "SELECT COALESCE(MAX(position), 0) + 1 FROM topic_contacts WHERE topic_id = ?",
            [found.id],
        ).fetchone()[0]
        cursor = db.execute(
            "INSERT INTO topic_contacts (topic_id, position, name, title, title_en, email,"
            " phone, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [found.id, position, *values.values(), now_iso()],
        )
    assert cursor.lastrowid is not None
    return Contact(id=cursor.lastrowid, **values, topic=found.name)


def of_topics(db: Database, topic_ids: list[int]) -> list[Contact]:
    """The contacts of these topics, topic by topic in the given order, without repeats."""
    seen: dict[tuple[str, str], Contact] = {}
    for topic_id in topic_ids:
        for row in db.execute(
            "SELECT c.id, c.name, c.title, c.title_en, c.email, c.phone, t.name"
            " FROM topic_contacts c JOIN topics t ON t.id = c.topic_id"
            " WHERE c.topic_id = ? ORDER BY c.position, c.id",
            [topic_id],
        ):
            contact = Contact(*row)
            seen.setdefault((contact.name.lower(), contact.email), contact)
    return list(seen.values())


def list_(db: Database, topic: str) -> list[Contact]:
    return of_topics(db, [resolve(db, topic).id])


def remove(db: Database, topic: str, name_or_email: str) -> Contact:
    """Remove the topic's contact with this name or email (case does not matter)."""
    wanted = name_or_email.strip().lower()
    with immediate(db):
        for contact in list_(db, topic):
            if wanted in (contact.name.lower(), contact.email.lower()):
                db.execute("DELETE FROM topic_contacts WHERE id = ?", [contact.id])
                return contact
    raise NotFound(f"topic {topic} has no contact {name_or_email!r}")
