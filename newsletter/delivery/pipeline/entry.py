"""The entry points: ``send`` (send or resume an edition) and ``send_test`` (test copies)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlite_utils import Database

from newsletter import links
from newsletter.audience import consent, subscribers
from newsletter.config import Settings
from newsletter.delivery.pipeline.dispatcher import Dispatcher
from newsletter.delivery.pipeline.jobs import Options, Progress, SendReport
from newsletter.delivery.pipeline.lanes import render_for
from newsletter.delivery.pipeline.lock import acquire_lock, release_lock
from newsletter.delivery.pipeline.planning import (
    Edition,
    edition_messages,
    load_edition,
    start,
)
from newsletter.delivery.pipeline.report import requeue_failed
from newsletter.errors import NewsletterError
from newsletter.mail import smtp
from newsletter.store.db import token_key


def refuse_unsealed(edition: Edition) -> None:
    """A draft built before holes were sealed could have its personal links imitated by its
    content: it is built again, never sent. One that already started going out is finished
    as it began (its first recipients got the same)."""
    if edition.hole_marker is None and edition.status == "draft":
        raise NewsletterError(
            f"edition {edition.id} was built by an earlier version whose personal links"
            f" article text could imitate: build it again (`newsletter editions delete"
            f" {edition.id}`, then `newsletter build`)"
        )


def send(
    db: Database,
    settings: Settings,
    edition_id: int,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    batch_size: int | None = None,
    max_errors: int | None = None,
    include_new: bool = False,
    progress: Progress | None = None,
    retry_base: float | None = None,
    retry_failed: bool = False,
) -> SendReport:
    """Send (or resume) an edition; returns the final counts and why it stopped.

    Raises EditionLocked when another send holds the edition, and the SMTP error when the
    server cannot be reached at all (everything stays pending). ``retry_failed`` first
    requeues the failed rows whose failure was not about the address or consent.
    """
    subscribers.recover_imports(db)  # a dead import's half is nobody's consent
    options = Options(
        rate=settings.rate if rate is None else rate,
        concurrency=settings.concurrency if concurrency is None else concurrency,
        batch_size=settings.batch_size if batch_size is None else batch_size,
        max_errors=settings.max_errors if max_errors is None else max_errors,
        max_retries=settings.max_retries,
        retry_base=settings.retry_base if retry_base is None else retry_base,
    )
    options.check()
    # Before the lock and the delivery log: a refused base URL leaves nothing marked.
    links.check_base_url(settings)
    edition = load_edition(db, edition_id)
    refuse_unsealed(edition)
    owner = uuid.uuid4().hex
    acquire_lock(db, edition.id, owner)
    try:
        if retry_failed and edition.status != "draft":
            requeue_failed(db, edition.id)
        start(db, edition, include_new)
        dispatcher = Dispatcher(db, settings, edition, options, owner, progress)
        report = dispatcher.run()
    finally:
        release_lock(db, edition.id, owner)
    run = dispatcher.recorder
    if run.crash is not None:
        raise run.crash
    if report.outcome == "unreachable" and run.fatal is not None:
        raise smtp.ConnectionFailed(report.message, code=run.fatal.code)
    return report


def normalize_test_addresses(addresses: Sequence[str]) -> list[str]:
    """The ``--to`` addresses, normalised; raises on the first one that is not an address."""
    return [subscribers.normalize_email(address) for address in addresses]


def why_no_test_copy(db: Database, address: str, topic_ids: Sequence[int]) -> str | None:
    """Why ``address`` may not get a test copy of an edition of ``topic_ids``, or None.

    A test copy is still mail: never to anyone the send itself would leave out for their
    own opt-out. That is a person who is not active (bounced, blocklisted ...), a suppressed
    address (erased, complained), one who unsubscribed from everything (no confirmed
    subscription left), or one who unsubscribed from the edition's topics and is subscribed
    to none of them. A staff address that is no subscriber gets its copy."""
    person = subscribers.find(db, address)
    suppression = subscribers.suppression_reason(db, address)
    reason = consent.opt_out(None, person["status"] if person else None, suppression)
    if reason == "suppressed" and suppression is not None:
        # A complaint and a blocklist entry are kept as suppressions: say which.
        reason = {"complaint": "complained", "blocklisted": "blocklisted"}.get(
            suppression.partition(":")[0], reason
        )
    if reason is not None or person is None:
        return reason
    statuses = subscribers.subscription_statuses(db, person["id"])
    if any(statuses.get(tid) == "confirmed" for tid in topic_ids):
        return None
    left_here = any(consent.opt_out(statuses.get(tid)) for tid in topic_ids)
    left_all = "unsubscribed" in statuses.values() and "confirmed" not in statuses.values()
    return "unsubscribed" if left_here or left_all else None


def check_test_addresses(db: Database, edition: Edition, addresses: Sequence[str]) -> list[str]:
    """The ``--to`` addresses, normalised; raises on the first that is no address or may
    not be mailed (``why_no_test_copy``), so ``--dry-run`` refuses what a send would."""
    checked = normalize_test_addresses(addresses)
    for address in checked:
        why = why_no_test_copy(db, address, edition.topic_ids)
        if why:
            raise NewsletterError(f"{address} is {why} and is never mailed; no test copy was sent")
    return checked


def send_test(
    db: Database,
    settings: Settings,
    edition_id: int,
    addresses: Sequence[str],
    lang: str | None = None,
) -> list[tuple[str, str]]:
    """Send a ``[TEST]`` copy to each address; no delivery is recorded. (address, Message-ID)."""
    links.check_base_url(settings)
    edition = load_edition(db, edition_id)
    checked = check_test_addresses(db, edition, addresses)
    # ``lang``'s variant, else the main one (what readers of the default language get).
    messages = edition_messages(db, settings, edition, test=True)
    if lang is not None and lang not in messages.by_lang:
        raise NewsletterError(
            f"edition {edition_id} has no {lang} variant (it has {', '.join(messages.by_lang)})"
        )
    template = messages.for_lang(lang or messages.main)
    key = token_key(db, settings.secret)
    topic_id = edition.topic_ids[0]
    sent: list[tuple[str, str]] = []
    # Subscriber id 0 exists for nobody: the links look real but change nothing.
    with smtp.Connection(settings) as connection:
        for address in checked:
            data, message_id = render_for(template, settings, key, address, "", 0, topic_id)
            connection.send(settings.sender_address, address, data)
            sent.append((address, message_id))
    return sent
