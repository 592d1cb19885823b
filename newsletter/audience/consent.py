"""The consent rules, in one place: who may turn a subscription on, and who the public
form may mail. ``docs/consent.md`` states them for people; this module is them for code.

An opt-out is sticky. Once a person has unsubscribed from a topic (or from everything,
which covers topics created later too), been erased, bounced,
complained or been blocklisted, a subscription of theirs is turned back on only by their
own confirmed action: the confirm link of a new double opt-in, or their preferences page
(both reach them through their own mailbox). A sign-up by anyone else is only a request;
no import turns it on; a staff member can, with an explicit override that the consent
trail records. The rule is a pure function of what is stored, so the importer can ask it
for 100,000 rows at once and the web service for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum

from sqlite_utils import Database

from newsletter.audience import subscribers
from newsletter.errors import NewsletterError
from newsletter.store.db import immediate


class Source(StrEnum):
    """Who asks to turn a subscription on."""

    SIGNUP = "signup"  # the public form: anyone may type any address
    CONFIRM_LINK = "confirm-link"  # the person, from the confirmation mail in their mailbox
    PREFERENCES = "preferences"  # the person, from a link in a mail to their mailbox
    IMPORT = "import"  # a staff file, possibly old, possibly another tool's
    STAFF = "staff"  # `subscribers add` without an override
    STAFF_OVERRIDE = "staff-override"  # `subscribers add --override-opt-out`


# Sources that are the person's own confirmed action.
OWN_ACTIONS = frozenset({Source.CONFIRM_LINK, Source.PREFERENCES})
# Subscriber statuses that mean "do not mail": any status but active (bounced, complained,
# blocklisted, and whatever later versions add) counts as an opt-out.
ACTIVE = "active"
# The consent-trail event of a staff override.
OVERRIDE_EVENT = "consent-override"
# The consent-trail event of a sign-up that could only be recorded as a request.
REQUEST_EVENT = "signup-request"


def opt_out(
    subscription: str | None,
    person: str | None = ACTIVE,
    suppression: str | None = None,
    all_out: bool = False,
) -> str | None:
    """Why a subscription is opted out, or None when nothing stands in its way.

    ``subscription`` is its status (None: none), ``person`` the subscriber's status (None:
    no row), ``suppression`` the reason of the address's suppression entry (None: none;
    ``erased:...`` for an erasure, anything else for a blocklist or another tool's list),
    ``all_out`` whether the person unsubscribed from everything: that holds for every
    topic, also one created after it.
    """
    if person is not None and person != ACTIVE:
        return person
    if suppression is not None:
        return "erased" if suppression.startswith("erased") else "suppressed"
    if subscription == "unsubscribed" or all_out:
        return "unsubscribed"
    return None


def may_activate(
    source: Source,
    *,
    subscription: str | None,
    person: str | None = ACTIVE,
    suppression: str | None = None,
    all_out: bool = False,
) -> bool:
    """May ``source`` make this subscription unconfirmed or confirmed?

    With no opt-out anyone may (a sign-up then awaits its confirmation; staff vouch for
    their import). After an opt-out only the person's own action or a staff override may,
    and never past a blocklist: `subscribers unblock` is the staff action for that.
    """
    reason = opt_out(subscription, person, suppression, all_out)
    if reason is None:
        return True
    if reason == "blocklisted":
        return source in OWN_ACTIONS
    return source in OWN_ACTIONS or source is Source.STAFF_OVERRIDE


def all_opted_out(db: Database, subscriber_id: int) -> bool:
    """Did the person unsubscribe from everything (and not come back by their own action)?"""
    row = db.execute(
        "SELECT unsubscribed_all IS NOT NULL FROM subscribers WHERE id = ?", [subscriber_id]
    ).fetchone()
    return bool(row and row[0])


def form_may_mail(person: str | None, suppression: str | None) -> bool:
    """May the public form mail this address a confirmation request?

    Never a bounced, complained or blocklisted person, nor a suppressed address; an erased
    one may be asked (confirming is how a person who asked to be erased comes back).
    """
    if person is not None and person != ACTIVE:
        return False
    return suppression is None or suppression.startswith("erased")


def staff_add(
    db: Database,
    email: str,
    *,
    name: str | None = None,
    lang: str | None = None,
    topic_ids: Sequence[int] = (),
    confirmed: bool = False,
    default_lang: str = "fi",
    source: str = "cli",
    override: bool = False,
) -> subscribers.AddResult:
    """``subscribers add`` by staff: ``add`` that never demotes a confirmed subscription.

    Without ``confirmed`` the topics are asked for as unconfirmed, but a topic the person
    has already confirmed stays confirmed (else a routine add would stop their mail).
    Someone who opted out (``opt_out``) is subscribed again only with ``override``,
    which writes a ``consent-override`` event per topic; without it ConsentRefused is
    raised and nothing changes.
    """
    address = subscribers.normalize_email(email)
    with immediate(db):
        row = subscribers.find(db, address)
        keep: set[int] = set()
        statuses = subscribers.subscription_statuses(db, row["id"]) if row is not None else {}
        if not confirmed:
            keep = {tid for tid, status in statuses.items() if status == "confirmed"}
        wanted = [tid for tid in topic_ids if tid not in keep]
        overridden = _check_staff_consent(db, address, row, statuses, wanted, override)
        result = subscribers.add(
            db,
            email,
            name=name,
            lang=lang,
            topic_ids=wanted,
            status="confirmed" if confirmed else "unconfirmed",
            source=source,
            default_lang=default_lang,
            lift_suppression_=row is None or overridden is not None,
        )
        if overridden is None:
            return result
        _record_override(db, result.subscriber_id, row, overridden, source)
        return replace(result, changed=True, overridden=tuple(sorted(set(overridden.values()))))


class ConsentRefused(NewsletterError):
    """A staff action that would undo a person's opt-out without an explicit override."""


def _check_staff_consent(
    db: Database,
    address: str,
    row: dict | None,
    statuses: dict[int, str],
    topic_ids: Sequence[int],
    override: bool,
) -> dict[int | None, str] | None:
    """What an override would undo ({topic id or None for the person: reason}), None when
    nothing; ConsentRefused when there is something and no override (or a blocklist)."""
    person = row["status"] if row is not None else None
    suppression = subscribers.suppression_reason(db, address)
    undone: dict[int | None, str] = {}
    if row is None and suppression is not None:
        undone[None] = opt_out(None, None, suppression) or "suppressed"
    all_out = row is not None and all_opted_out(db, row["id"])
    for tid in topic_ids:
        state = {
            "subscription": statuses.get(tid),
            "person": person,
            "suppression": suppression,
            "all_out": all_out,
        }
        if may_activate(Source.STAFF, **state):
            continue
        reason = opt_out(**state) or "opted out"
        if not may_activate(Source.STAFF_OVERRIDE, **state):
            raise ConsentRefused(
                f"{address} is {reason}: `subscribers unblock` first if they asked to return"
            )
        undone[tid] = reason
    if undone and not override:
        reasons = sorted(set(undone.values()))
        raise ConsentRefused(
            f"{address} opted out ({', '.join(reasons)}): only their own confirmation brings"
            " them back; pass --override-opt-out if they asked you directly (it is recorded)"
        )
    return undone or None


def _record_override(
    db: Database, subscriber_id: int, row: dict | None, undone: dict[int | None, str], source: str
) -> None:
    for tid, reason in undone.items():
        subscribers.record_event(
            db, subscriber_id, OVERRIDE_EVENT, source, tid, detail={"undid": reason}
        )
    if row is not None and row["status"] in ("bounced", "complained"):
        subscribers.set_status(db, subscriber_id, ACTIVE, source)
