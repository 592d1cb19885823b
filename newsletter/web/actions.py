"""What the signed links do, as plain functions: unsubscribe, preferences, erasure.

Each takes the raw token from the URL and raises InvalidToken when it is forged, altered
or malformed, before anything is read or changed. The views only render the results.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from newsletter import links
from newsletter.audience import subscribers
from newsletter.clock import now_iso
from newsletter.config import LANGUAGES
from newsletter.content import topics as topics_mod
from newsletter.content.topics import all_topics
from newsletter.errors import InvalidToken, NewsletterError
from newsletter.store.db import immediate


@dataclass(frozen=True)
class UnsubscribeLink:
    subscriber_id: int
    topic_id: int
    topic_name: str | None  # None when the topic no longer exists
    lang: str | None  # None when the person no longer exists (erased, or a test send)
    status: str | None  # the subscription's status now, None when there is none


def read_unsubscribe(db: Database, keys: Sequence[bytes], token: str) -> UnsubscribeLink:
    subscriber_id, topic_id = links.read_unsubscribe(keys, token)
    person = subscribers.get(db, subscriber_id)
    topic = topics_mod.get(db, topic_id)
    row = db.execute(
        "SELECT status FROM subscriptions WHERE subscriber_id = ? AND topic_id = ?",
        [subscriber_id, topic_id],
    ).fetchone()
    return UnsubscribeLink(
        subscriber_id,
        topic_id,
        # In the reader's language: the page is in it too.
        topic.name_for(person["lang"] if person else None) if topic else None,
        person["lang"] if person else None,
        row[0] if row else None,
    )


def unsubscribe(db: Database, keys: Sequence[bytes], token: str, source: str) -> UnsubscribeLink:
    """Unsubscribe the link's person from the link's topic. Idempotent; an unknown person
    (erased, or the dummy of a test send) is simply not subscribed."""
    with immediate(db):
        link = read_unsubscribe(db, keys, token)
        if link.status is not None:
            subscribers.unsubscribe(db, link.subscriber_id, link.topic_id, source)
    return read_unsubscribe(db, keys, token)


@dataclass(frozen=True)
class TopicChoice:
    id: int
    slug: str
    name: str
    status: str | None  # unconfirmed, confirmed, unsubscribed, or None (never subscribed)

    @property
    def receiving(self) -> bool:
        return self.status == "confirmed"


@dataclass(frozen=True)
class Preferences:
    subscriber_id: int
    lang: str
    topics: list[TopicChoice]


def preferences_subscriber(db: Database, keys: Sequence[bytes], token: str) -> int:
    """The person a preferences link belongs to; InvalidToken when bad or erased."""
    subscriber_id = links.read_preferences(keys, token)
    if subscribers.get(db, subscriber_id) is None:
        raise InvalidToken("no such subscriber")
    return subscriber_id


def load_preferences(db: Database, subscriber_id: int) -> Preferences:
    """Only this person's own subscriptions and language: never their address."""
    person = subscribers.get(db, subscriber_id)
    if person is None:
        raise InvalidToken("no such subscriber")
    statuses = subscribers.subscription_statuses(db, subscriber_id)
    listed = set(all_topics(db, listed_only=True))
    # Listed topics, and any other the person has a subscription to (so they can leave it).
    choices = [
        TopicChoice(t.id, t.slug, t.name_for(person["lang"]), statuses.get(t.id))
        for t in all_topics(db)
        if t.id in statuses or t in listed
    ]
    return Preferences(subscriber_id, person["lang"], choices)


def save_preferences(
    db: Database, subscriber_id: int, *, lang: str, topic_ids: Collection[int], source: str = "web"
) -> int:
    """Apply the submitted form: checked topics confirmed, unchecked received ones
    unsubscribed, language set. Returns the number of changes.

    Checking a topic here needs no further confirmation: the link came to the person's own
    mailbox. An unchecked topic that awaits confirmation is left waiting.
    """
    if lang not in LANGUAGES:
        raise NewsletterError(f"unknown language {lang!r}")
    changes = 0
    with immediate(db):
        current = load_preferences(db, subscriber_id)
        unknown = set(topic_ids) - {choice.id for choice in current.topics}
        if unknown:
            raise NewsletterError(f"unknown topic id {min(unknown)}")
        for choice in current.topics:
            if choice.id in topic_ids and not choice.receiving:
                changes += subscribers.set_subscription(
                    db, subscriber_id, choice.id, "confirmed", source
                )
            elif choice.id not in topic_ids and choice.receiving:
                changes += subscribers.set_subscription(
                    db, subscriber_id, choice.id, "unsubscribed", source
                )
        if lang != current.lang:
            db.execute(
                "UPDATE subscribers SET lang = ?, updated = ? WHERE id = ?",
                [lang, now_iso(), subscriber_id],
            )
            subscribers.record_event(db, subscriber_id, "update", source, detail={"lang": lang})
            changes += 1
    return changes


def unsubscribe_all(db: Database, subscriber_id: int, source: str = "web") -> int:
    with immediate(db):
        return subscribers.unsubscribe(db, subscriber_id, None, source)


def erase(db: Database, subscriber_id: int, source: str = "web") -> None:
    """GDPR erasure requested by the person: the same ``remove`` staff can run."""
    person = subscribers.get(db, subscriber_id)
    if person is None:
        raise InvalidToken("no such subscriber")
    subscribers.erase(db, person["email"], source=source)
