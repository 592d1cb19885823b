"""Where reports come from, behind one interface: each source yields ``Incoming`` items
(a label and either the raw mail or reports already parsed from a webhook), and
``process`` records them all the same way.

Mailbox sources: a Maildir or mbox exported from the bounce mailbox, or the mailbox itself
over IMAP with TLS. Nothing in the mailbox is changed or deleted: messages that are no
report are only listed, for a person to read.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import re
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

from sqlite_utils import Database

from newsletter.config import Settings
from newsletter.delivery import mailbox_unsubscribe
from newsletter.delivery.bounces import record as recording
from newsletter.delivery.bounces.reports import Report, parse, scrub
from newsletter.errors import ConfigError, NewsletterError
from newsletter.store.db import link_keys

MAX_MESSAGE = 10 * 1024 * 1024  # octets: a report is small; a huge message is not read
ADDRESS_ONLY_WHY = (
    "names a subscriber only by address, without our VERP token or Message-ID:"
    " anyone can send that, so it was not acted on"
)


@dataclass
class Incoming:
    label: str  # where it came from: mailbox key, IMAP UID, webhook event id
    data: bytes = b""  # a mail message, parsed here
    reports: list[Report] | None = None  # or reports a webhook already gave


@dataclass
class ImportReport:
    messages: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    duplicates: int = 0  # already counted before
    unmatched: int = 0  # a report about nobody we mailed, or that proves too little
    # The unmatched reports that name a subscriber by address alone, for a person to look at.
    address_only: list[dict] = field(default_factory=list)
    other: list[dict] = field(default_factory=list)  # neither a DSN nor a complaint

    def as_dict(self) -> dict:
        return {
            "messages": self.messages,
            "hard_bounces": self.hard,
            "soft_bounces": self.soft,
            "complaints": self.complaints,
            "duplicates": self.duplicates,
            "unmatched": self.unmatched,
            "unmatched_reports": self.address_only,
            "not_reports": self.other,
        }


def process(
    db: Database,
    settings: Settings,
    items: Iterable[Incoming],
    source: str,
    progress: Callable[[int], None] | None = None,
    vouched: bool = False,
) -> ImportReport:
    """Record every report of ``items``; ``vouched`` when a provider authenticated them
    (webhooks), which lets a report naming only an address count (see ``record``)."""
    keys = link_keys(db, settings.secret)
    result = ImportReport()
    for item in items:
        result.messages += 1
        reports = item.reports if item.reports is not None else _parse(item, result)
        for report in reports or []:
            outcome = recording.record(db, settings, keys, report, source, vouched)
            _count(result, outcome)
            if outcome == recording.ADDRESS_ONLY:
                result.address_only.append(
                    {"message": item.label, "kind": report.kind, "why": ADDRESS_ONLY_WHY}
                )
        if progress:
            progress(1)
    return result


def _parse(item: Incoming, result: ImportReport) -> list[Report] | None:
    try:
        reports = parse(item.data)
    except Exception as exc:  # one broken message must not stop the others
        result.other.append({"message": item.label, "why": f"unreadable ({type(exc).__name__})"})
        return None
    if reports is None:
        head = message_from_bytes(item.data[:65536], policy=policy.compat32)
        result.other.append(
            {
                "message": item.label,
                "from": scrub(str(head.get("From", ""))),
                "subject": " ".join(str(head.get("Subject", "")).split())[:120],
                "why": "neither a delivery status notification nor a complaint report",
            }
        )
    return reports


def _count(result: ImportReport, outcome: str) -> None:
    if outcome == "hard":
        result.hard += 1
    elif outcome == "soft":
        result.soft += 1
    elif outcome == "complaint":
        result.complaints += 1
    elif outcome == recording.DUPLICATE:
        result.duplicates += 1
    else:
        result.unmatched += 1


# --- mailboxes -----------------------------------------------------------------------------


def from_mailbox(path: Path) -> Iterator[Incoming]:
    """Every message of a Maildir or mbox file."""
    box = mailbox_unsubscribe.open_mailbox(Path(path))
    try:
        for key in box.iterkeys():
            yield Incoming(str(key), box.get_bytes(key)[:MAX_MESSAGE])
    except (OSError, mailbox.Error) as exc:
        raise NewsletterError(f"{path}: cannot read the mailbox: {exc}") from None
    finally:
        box.close()


def imap_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.imap_ca_file:
        context.load_verify_locations(cafile=str(settings.imap_ca_file))
    return context


_FETCHED = re.compile(rb"UID (\d+)")


def from_imap(settings: Settings) -> Iterator[Incoming]:
    """Every message of the configured IMAP folder, over TLS, read without marking it seen."""
    if not settings.imap_host or not settings.imap_username:
        raise ConfigError(
            "bounces import --imap needs bounces.imap_host and bounces.imap_username (or"
            " NEWSLETTER_IMAP_HOST/_USERNAME) and NEWSLETTER_IMAP_PASSWORD"
        )
    where = f"{settings.imap_host}:{settings.imap_port}"
    try:
        client = imaplib.IMAP4_SSL(
            settings.imap_host, settings.imap_port, ssl_context=imap_context(settings),
            timeout=settings.smtp_timeout,
        )  # fmt: skip
    except (OSError, imaplib.IMAP4.error) as exc:
        raise NewsletterError(f"cannot reach IMAP server {where}: {exc}") from None
    try:
        yield from _read_folder(client, settings, where)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise NewsletterError(f"IMAP server {where}: {exc}") from None
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()


def _read_folder(client: imaplib.IMAP4, settings: Settings, where: str) -> Iterator[Incoming]:
    try:
        client.login(settings.imap_username, settings.imap_password)
    except imaplib.IMAP4.error:
        raise NewsletterError(
            f"IMAP server {where} refused the login for {settings.imap_username!r}"
        ) from None
    status, _ = client.select(_quote(settings.imap_folder), readonly=True)
    if status != "OK":
        raise NewsletterError(f"IMAP server {where}: no folder {settings.imap_folder!r}")
    status, found = client.uid("SEARCH", "ALL")
    uids = (found[0] or b"").split() if status == "OK" else []
    for uid in uids:
        status, parts = client.uid("FETCH", uid, "(UID BODY.PEEK[])")
        for part in parts or []:
            if isinstance(part, tuple) and _FETCHED.search(part[0]):
                yield Incoming(f"uid {uid.decode()}", part[1][:MAX_MESSAGE])


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
