"""Double opt-in: sign-ups stay ``unconfirmed`` until the person presses confirm in a mail.

Who may sign up whom is unknowable, so nothing here trusts the form: an anonymous sign-up
never demotes a confirmed subscription, never changes a known person's name or language,
never lifts a suppression (only the confirmation does), and never mails bounced or
blocklisted addresses. The caller shows the same page whatever happened here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlite_utils import Database

from newsletter import links, tokens
from newsletter.audience import subscribers
from newsletter.clock import now, to_iso
from newsletter.config import LANGUAGES, Settings
from newsletter.content import render
from newsletter.content import topics as topics_mod
from newsletter.content.topics import Topic
from newsletter.errors import InvalidToken, NewsletterError
from newsletter.mail import message, smtp
from newsletter.store.db import immediate, token_key

MAILABLE_STATUS = "active"

# The confirmation mail. It never repeats the name typed into the form: the sign-up form
# must not become a way to send chosen text to any address.
MAIL_TEXT: dict[str, dict[str, str]] = {
    "subject": {
        "fi": "Vahvista uutiskirjeen tilaus – {org}",
        "sv": "Bekräfta prenumerationen på nyhetsbrevet – {org}",
        "en": "Please confirm your newsletter subscription – {org}",
    },
    "heading": {
        "fi": "Vahvista tilauksesi",
        "sv": "Bekräfta din prenumeration",
        "en": "Confirm your subscription",
    },
    "greeting": {"fi": "Hei!", "sv": "Hej!", "en": "Hello,"},
    "topics": {
        "fi": "Kiitos, että tilasit uutiskirjeemme seuraavista aiheista: {topics}.",
        "sv": "Tack för att du prenumererar på vårt nyhetsbrev om följande ämnen: {topics}.",
        "en": "Thank you for subscribing to our newsletter on these topics: {topics}.",
    },
    "action": {
        "fi": "Vahvista tilaus alla olevasta painikkeesta. Linkki on voimassa {days} päivää.",
        "sv": "Bekräfta prenumerationen med knappen nedan. Länken gäller i {days} dagar.",
        "en": "Please confirm the subscription with the button below. The link is valid for "
        "{days} days.",
    },
    "button": {
        "fi": "Vahvista tilaus",
        "sv": "Bekräfta prenumerationen",
        "en": "Confirm subscription",
    },
    "reason": {
        "fi": "Saat tämän viestin, koska osoitteesi annettiin uutiskirjeemme tilauslomakkeella. "
        "Jos et tilannut uutiskirjettä, voit jättää viestin huomiotta: emme lähetä "
        "uutiskirjeitä ilman vahvistustasi.",
        "sv": "Du får det här meddelandet eftersom din adress angavs i vårt formulär för "
        "nyhetsbrevet. Om du inte har prenumererat kan du bortse från meddelandet: vi skickar "
        "inga nyhetsbrev utan din bekräftelse.",
        "en": "You are receiving this message because your address was entered in our "
        "newsletter sign-up form. If you did not subscribe, you can ignore this message: we "
        "send no newsletters without your confirmation.",
    },
}


def mail_text(key: str, lang: str, **values: object) -> str:
    return MAIL_TEXT[key][lang].format(**values)


@dataclass(frozen=True)
class SignUp:
    subscriber_id: int | None  # None when nothing was recorded (bounced or blocklisted person)
    needs_mail: bool  # some requested topic awaits confirmation


@dataclass(frozen=True)
class Pending:
    subscriber_id: int
    lang: str
    topics: list[Topic]  # the subscriptions this link would confirm


def _topics_with_status(db: Database, subscriber_id: int, status: str) -> list[Topic]:
    rows = db.execute(
        "SELECT t.id, t.slug, t.name FROM subscriptions s JOIN topics t ON t.id = s.topic_id"
        " WHERE s.subscriber_id = ? AND s.status = ? ORDER BY t.name",
        [subscriber_id, status],
    ).fetchall()
    return topics_mod.with_names(db, rows)


def sign_up(
    db: Database,
    settings: Settings,
    *,
    email: str,
    name: str = "",
    lang: str | None = None,
    topic_ids: Sequence[int],
    source: str = "web",
) -> SignUp:
    """Record an unconfirmed sign-up. Raises InvalidEmail for a bad address; mails nothing."""
    address = subscribers.normalize_email(email)
    with immediate(db):
        row = subscribers.find(db, address)
        if row is not None and row["status"] != MAILABLE_STATUS:
            return SignUp(None, False)
        confirmed: set[int] = set()
        if row is not None:
            confirmed = {t.id for t in _topics_with_status(db, row["id"], "confirmed")}
        wanted = [tid for tid in dict.fromkeys(topic_ids) if tid not in confirmed]
        if row is not None and not wanted:
            return SignUp(row["id"], False)
        result = subscribers.add(
            db,
            address,
            # A stranger must not rename a known person or change their language.
            name=name if row is None else None,
            lang=lang if row is None else None,
            topic_ids=wanted,
            status="unconfirmed",
            source=source,
            default_lang=settings.default_lang,
            lift_suppression_=False,
        )
    return SignUp(result.subscriber_id, bool(wanted))


def confirm_expiry(settings: Settings, *, now: float | None = None) -> int:
    return int(now if now is not None else time.time()) + settings.confirm_days * 86400


def request_confirmation(
    db: Database,
    settings: Settings,
    subscriber_id: int,
    *,
    lang: str | None = None,
    connection: smtp.Connection | None = None,
    source: str = "web",
) -> bool:
    """Mail the confirmation request for the person's unconfirmed topics.

    False (nothing sent) when there is nothing to confirm or the person may not be mailed.
    SMTP failures raise ``smtp``'s NewsletterError subclasses. ``connection`` is reused
    when given (many requests in a row), else a fresh one is opened for this mail.
    """
    person = subscribers.get(db, subscriber_id)
    if person is None or person["status"] != MAILABLE_STATUS:
        return False
    pending = _topics_with_status(db, subscriber_id, "unconfirmed")
    if not pending:
        return False
    lang = lang if lang in LANGUAGES else person["lang"]
    url = links.confirm_url(
        settings, token_key(db, settings.secret), subscriber_id, confirm_expiry(settings)
    )
    subject = mail_text("subject", lang, org=settings.org_name)
    rendered = render.render_message(
        settings,
        lang=lang,
        subject=subject,
        heading=mail_text("heading", lang),
        paragraphs=[
            mail_text("greeting", lang),
            mail_text("topics", lang, topics=", ".join(t.name_for(lang) for t in pending)),
            mail_text("action", lang, days=settings.confirm_days),
        ],
        button_label=mail_text("button", lang),
        button_url=url,
        reason=mail_text("reason", lang),
    )
    data, _message_id = message.build_single(
        settings,
        to_email=person["email"],
        # Not the name either: a stranger typed it, and it would show in the To line.
        to_name="",
        subject=subject,
        html=rendered.html,
        text=rendered.text,
    )
    if connection is None:
        smtp.send_one(settings, settings.sender_address, [person["email"]], data)
    else:
        connection.send(settings.sender_address, person["email"], data)
    subscribers.record_event(
        db, subscriber_id, "confirmation-sent", source, detail={"topics": [t.slug for t in pending]}
    )
    return True


@dataclass(frozen=True)
class Mailed:
    """What ``send_confirmations`` did."""

    sent: int  # confirmation requests mailed now
    skipped: int  # people whose earlier request still covers all they have pending


def has_valid_request(db: Database, settings: Settings, subscriber_id: int) -> bool:
    """True when an active person's pending topics were all in a confirmation request
    mailed within ``confirm_days``: the link in it still works and confirms them all."""
    person = subscribers.get(db, subscriber_id)
    if person is None or person["status"] != MAILABLE_STATUS:
        return False
    pending = {t.slug for t in _topics_with_status(db, subscriber_id, "unconfirmed")}
    if not pending:
        return False
    # Stored times are UTC ISO 8601 with seconds, so they compare as text.
    since = to_iso(now() - timedelta(days=settings.confirm_days))
    rows = db.execute(
        "SELECT detail FROM events WHERE subscriber_id = ? AND action = 'confirmation-sent'"
        " AND time > ?",
        [subscriber_id, since],
    )
    return any(pending <= set(_mailed_topics(detail)) for (detail,) in rows)


def _mailed_topics(detail: str | None) -> list[str]:
    try:
        data = json.loads(detail or "{}")
    except ValueError:
        return []
    topics = data.get("topics") if isinstance(data, dict) else None
    return topics if isinstance(topics, list) else []


def send_confirmations(
    db: Database, settings: Settings, subscriber_ids: Iterable[int], *, source: str = "cli"
) -> Mailed:
    """Mail confirmation requests to each unconfirmed person; how many were mailed.

    For ``subscribers add/import --send-confirmation``, over one reused connection. People
    whose earlier request is still valid for everything they have pending are skipped, so
    importing the same list again does not mail the same people again. (The web sign-up
    mails again on purpose: there the person is asking.) An address the server refuses
    (5xx) is skipped with a ``confirmation-refused`` event, and the others are still
    mailed: stopping there would stop every rerun at the same address. Once all are
    tried, refusals raise a NewsletterError that counts them. A connection failure stops
    at once with a NewsletterError that says how many were mailed; a rerun mails the rest.
    """
    # Every request carries a link to base_url: never one the web service would refuse.
    links.check_base_url(settings)
    ids = list(dict.fromkeys(subscriber_ids))
    sent = skipped = 0
    refused: list[str] = []
    with smtp.Connection(settings) as connection:
        for done, subscriber_id in enumerate(ids):
            if has_valid_request(db, settings, subscriber_id):
                skipped += 1
                continue
            try:
                sent += request_confirmation(
                    db, settings, subscriber_id, connection=connection, source=source
                )
            except smtp.PermanentFailure as exc:
                refused.append(exc.reply)
                subscribers.record_event(
                    db, subscriber_id, "confirmation-refused", source, detail={"code": exc.code}
                )
            except NewsletterError as exc:
                raise NewsletterError(
                    f"confirmation requests stopped after {done} of {len(ids)} people"
                    f" ({sent} mailed): {exc}"
                ) from None
    if refused:
        raise NewsletterError(
            f"{sent} of {len(ids)} confirmation requests mailed; the mail server refused"
            f" {len(refused)} (first reply: {refused[0]})"
        )
    return Mailed(sent, skipped)


def _subscriber_from_token(db: Database, settings: Settings, token: str) -> int:
    data = tokens.check(token_key(db, settings.secret), links.CONFIRM, token)
    if len(data.values) != 1 or data.expires_at is None:
        raise InvalidToken("malformed token")
    return data.values[0]


def is_expired(db: Database, settings: Settings, token: str) -> bool:
    """True when ``token`` is a genuine confirmation token whose time has passed."""
    key = token_key(db, settings.secret)
    try:
        tokens.check(key, links.CONFIRM, token)
    except InvalidToken:
        try:
            tokens.check(key, links.CONFIRM, token, now=0)
        except InvalidToken:
            return False
        return True
    return False


def pending(db: Database, settings: Settings, token: str) -> Pending:
    """What the link would confirm; InvalidToken when forged, expired or the person is gone."""
    subscriber_id = _subscriber_from_token(db, settings, token)
    person = subscribers.get(db, subscriber_id)
    if person is None:
        raise InvalidToken("no such subscriber")
    return Pending(
        subscriber_id, person["lang"], _topics_with_status(db, subscriber_id, "unconfirmed")
    )


def confirm(db: Database, settings: Settings, token: str) -> Pending:
    """Turn the person's unconfirmed subscriptions confirmed; returns what was confirmed.

    This is the person's own confirmed sign-up, so an erasure suppression of the address
    is lifted. Repeating it confirms nothing more and is harmless.
    """
    with immediate(db):
        found = pending(db, settings, token)
        person = subscribers.get(db, found.subscriber_id)
        assert person is not None
        for topic in found.topics:
            subscribers.set_subscription(db, found.subscriber_id, topic.id, "confirmed", "web")
        if found.topics:
            subscribers.lift_suppression(db, person["email"])
    return found
