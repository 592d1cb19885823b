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
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from newsletter import links
from newsletter.audience import consent, subscribers
from newsletter.clock import now, to_iso
from newsletter.config import LANGUAGES, Settings
from newsletter.content import render
from newsletter.content import topics as topics_mod
from newsletter.content.topics import Topic
from newsletter.errors import InvalidToken, NewsletterError
from newsletter.mail import message, smtp
from newsletter.store.db import immediate, link_keys, token_key

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
    # Staff imports and adds: the person did not fill in the form, so the mail says who
    # added the address and why, and that nothing is sent without their confirmation.
    "topics_staff": {
        "fi": "{org} lisäsi osoitteesi uutiskirjeensä vastaanottajaksi aiheista {topics}, "
        "koska osoitteesi on sen yhteystiedoissa.",
        "sv": "{org} lade till din adress som mottagare av sitt nyhetsbrev om {topics}, "
        "eftersom adressen finns bland dess kontaktuppgifter.",
        "en": "{org} added your address to its newsletter on these topics: {topics}, because "
        "your address is in its contact records.",
    },
    "reason_staff": {
        "fi": "Saat tämän viestin, koska {org} lisäsi osoitteesi. Jos et halua uutiskirjettä, "
        "jätä viesti huomiotta: emme lähetä uutiskirjeitä ilman vahvistustasi.",
        "sv": "Du får det här meddelandet eftersom {org} lade till din adress. Om du inte vill "
        "ha nyhetsbrevet kan du bortse från meddelandet: vi skickar inga nyhetsbrev utan din "
        "bekräftelse.",
        "en": "You are receiving this message because {org} added your address. If you do not "
        "want the newsletter, ignore this message: we send no newsletters without your "
        "confirmation.",
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
    """Record a sign-up from the public form. Raises InvalidEmail for a bad address; mails
    nothing (``needs_mail`` says whether a confirmation request should go out).

    Opt-outs are sticky (``consent``): a topic the person left is only recorded as a
    request, which their own confirmation turns on; a bounced, complained or blocklisted
    person, or a suppressed address, gets a request recorded (when there is a row to
    keep it on) and no mail.
    """
    address = subscribers.normalize_email(email)
    wanted = list(dict.fromkeys(topic_ids))
    with immediate(db):
        row = subscribers.find(db, address)
        person = row["status"] if row is not None else None
        suppression = subscribers.suppression_reason(db, address)
        if not consent.form_may_mail(person, suppression):
            if row is not None:
                _record_requests(db, row["id"], wanted, source)
            return SignUp(row["id"] if row is not None else None, False)
        if row is None:
            result = subscribers.add(
                db,
                address,
                name=name,
                lang=lang,
                topic_ids=wanted,
                status="unconfirmed",
                source=source,
                default_lang=settings.default_lang,
                lift_suppression_=False,
            )
            return SignUp(result.subscriber_id, bool(wanted))
        statuses = subscribers.subscription_statuses(db, row["id"])
        all_out = consent.all_opted_out(db, row["id"])
        open_, requested = [], []
        for tid in wanted:
            if statuses.get(tid) == "confirmed":
                continue  # never demoted by a stranger
            state = {
                "subscription": statuses.get(tid),
                "person": person,
                "suppression": suppression,
                "all_out": all_out,
            }
            if consent.may_activate(consent.Source.SIGNUP, **state):
                open_.append(tid)
            else:
                requested.append(tid)
        for tid in open_:
            # A stranger must not rename a known person or change their language.
            subscribers.set_subscription(db, row["id"], tid, "unconfirmed", source)
        _record_requests(db, row["id"], requested, source)
    return SignUp(row["id"], bool(open_ or requested))


def _record_requests(
    db: Database, subscriber_id: int, topic_ids: Sequence[int], source: str
) -> None:
    """Keep sign-ups for opted-out topics as requests: the subscription stays as it was."""
    if not topic_ids:
        return
    stamp = to_iso(now())
    db.conn.executemany(
        "INSERT OR REPLACE INTO signup_requests (subscriber_id, topic_id, requested, source)"
        " VALUES (?, ?, ?, ?)",
        [(subscriber_id, tid, stamp, source) for tid in topic_ids],
    )
    for tid in topic_ids:
        subscribers.record_event(db, subscriber_id, consent.REQUEST_EVENT, source, tid)


def pending_topics(db: Database, subscriber_id: int, *, issued: float | None = None) -> list[Topic]:
    """What a confirmation would turn on: unconfirmed subscriptions, and the sign-up
    requests for opted-out topics made before the link was ``issued`` (all when None).

    A confirm link from before a request never answers it: a person who clicks an old
    mail after leaving must not be subscribed by a stranger's later sign-up.
    """
    found = {t.id: t for t in _topics_with_status(db, subscriber_id, "unconfirmed")}
    sql = (
        "SELECT t.id, t.slug, t.name FROM signup_requests r JOIN topics t ON t.id = r.topic_id"
        " WHERE r.subscriber_id = ?"
    )
    params: list[object] = [subscriber_id]
    if issued is not None:
        sql += " AND r.requested <= ?"
        params.append(to_iso(datetime.fromtimestamp(int(issued) + 1, UTC)))
    for row in db.execute(sql, params):
        found.setdefault(row[0], Topic(*row))
    return sorted(found.values(), key=lambda t: t.name)


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
    staff: bool = False,
) -> bool:
    """Mail the confirmation request for the person's unconfirmed topics.

    ``staff``: the address was added by staff (import, add), not typed into the form by
    the person, and the mail says so.

    False (nothing sent) when there is nothing to confirm or the person may not be mailed.
    SMTP failures raise ``smtp``'s NewsletterError subclasses. ``connection`` is reused
    when given (many requests in a row), else a fresh one is opened for this mail.
    """
    person = subscribers.get(db, subscriber_id)
    if person is None or person["status"] != MAILABLE_STATUS:
        return False
    pending = pending_topics(db, subscriber_id)
    if not pending or (source == "web" and _mailed_recently(db, settings, subscriber_id)):
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
            mail_text(
                "topics_staff" if staff else "topics",
                lang,
                topics=", ".join(t.name_for(lang) for t in pending),
                org=settings.org_name,
            ),
            mail_text("action", lang, days=settings.confirm_days),
        ],
        button_label=mail_text("button", lang),
        button_url=url,
        reason=mail_text("reason_staff" if staff else "reason", lang, org=settings.org_name),
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


def _mailed_recently(db: Database, settings: Settings, subscriber_id: int) -> bool:
    """A confirmation went to this person within ``confirm_interval_minutes``: the public
    form, posted again and again, must not become a way to flood someone's mailbox."""
    if settings.confirm_interval_minutes <= 0:
        return False
    since = to_iso(now() - timedelta(minutes=settings.confirm_interval_minutes))
    row = db.execute(
        "SELECT 1 FROM events WHERE subscriber_id = ? AND action = 'confirmation-sent'"
        " AND time > ? LIMIT 1",
        [subscriber_id, since],
    ).fetchone()
    return row is not None


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
    pending = {t.slug for t in pending_topics(db, subscriber_id)}
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
    db: Database,
    settings: Settings,
    subscriber_ids: Iterable[int],
    *,
    source: str = "cli",
    staff: bool = True,
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
                    db,
                    settings,
                    subscriber_id,
                    connection=connection,
                    source=source,
                    staff=staff,
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


def _read_token(db: Database, settings: Settings, token: str) -> tuple[int, float]:
    """(subscriber id, when the link was issued: its expiry less ``confirm_days``)."""
    data = links.read_confirm(link_keys(db, settings.secret), token)
    assert data.expires_at is not None
    return data.values[0], data.expires_at - settings.confirm_days * 86400


def is_expired(db: Database, settings: Settings, token: str) -> bool:
    """True when ``token`` is a genuine confirmation token whose time has passed."""
    keys = link_keys(db, settings.secret)
    try:
        links.read_confirm(keys, token)
    except InvalidToken:
        try:
            links.read_confirm(keys, token, now=0)
        except InvalidToken:
            return False
        return True
    return False


def pending(db: Database, settings: Settings, token: str) -> Pending:
    """What the link would confirm; InvalidToken when forged, expired or the person is gone."""
    subscriber_id, issued = _read_token(db, settings, token)
    person = subscribers.get(db, subscriber_id)
    if person is None:
        raise InvalidToken("no such subscriber")
    return Pending(subscriber_id, person["lang"], pending_topics(db, subscriber_id, issued=issued))


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
