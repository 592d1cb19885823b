"""Unsubscribe requests that arrived by mail at the ``mailto:`` of List-Unsubscribe.

Mail clients that do not do one-click send a message to that address with the subject
``unsubscribe <token>`` (``links.unsubscribe_mailto``). Staff export the mailbox (Maildir
or mbox) and import it here. The signed token is the proof: the From address is not, since
forwarding and aliases change it and it can be forged anyway.
"""

from __future__ import annotations

import mailbox
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from urllib.parse import unquote

from sqlite_utils import Database

from newsletter import links
from newsletter.audience import subscribers
from newsletter.config import Settings
from newsletter.errors import InvalidToken, NewsletterError
from newsletter.store.db import immediate, link_keys

SOURCE = "mailto"
# <base-36 fields ('_' before a negative one) joined by '-'>.<16 characters of base64url MAC>
_TOKEN = re.compile(
    r"(?<![0-9A-Za-z_.-])(_?[0-9a-z]+(?:-_?[0-9a-z]+)*\.[A-Za-z0-9_-]{16})(?![\w-])"
)
_TAG = re.compile(r"<[^>]*>")
MAX_BODY_CHARS = 200_000  # a request is one line; do not scan huge attachments


@dataclass
class ImportReport:
    messages: int = 0
    applied: int = 0  # a subscription was ended
    already_unsubscribed: int = 0  # valid request, nothing left to end
    unknown: int = 0  # valid token, but the person no longer exists (erased)
    invalid: int = 0  # no token, or a forged/altered one
    problems: list[dict] = field(default_factory=list)  # what the invalid ones were

    def as_dict(self) -> dict:
        return {
            "messages": self.messages,
            "applied": self.applied,
            "already_unsubscribed": self.already_unsubscribed,
            "unknown": self.unknown,
            "invalid": self.invalid,
            "problems": self.problems,
        }


def open_mailbox(path: Path) -> mailbox.Mailbox:
    """A Maildir (a folder with cur/ and new/) or an mbox file; NewsletterError otherwise."""
    if path.is_dir():
        if not ((path / "cur").is_dir() or (path / "new").is_dir()):
            raise NewsletterError(f"{path}: not a Maildir (no cur/ or new/ folder)")
        return mailbox.Maildir(str(path), factory=None, create=False)
    if not path.is_file():
        raise NewsletterError(f"{path}: no such file or folder")
    with path.open("rb") as fh:
        head = fh.read(5)
    if head and head != b"From ":
        raise NewsletterError(f"{path}: not an mbox file (it must start with a 'From ' line)")
    return mailbox.mbox(str(path), create=False)


def _messages(box: mailbox.Mailbox) -> Iterator[tuple[str, bytes]]:
    for key in box.iterkeys():
        yield str(key), box.get_bytes(key)


def _texts(message: EmailMessage) -> Iterator[str]:
    """The subject first, then plain-text parts, then HTML parts stripped of tags."""
    yield str(message.get("Subject", ""))
    html: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment":
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError):
            continue
        if part.get_content_subtype() == "html":
            html.append(unescape(_TAG.sub(" ", content[:MAX_BODY_CHARS])))
        else:
            yield content[:MAX_BODY_CHARS]
    yield from html


def find_token(keys: Sequence[bytes], message: EmailMessage) -> tuple[str | None, str | None]:
    """(the first genuine unsubscribe token, None) or (None, why none was found)."""
    seen_candidate = False
    for text in _texts(message):
        # Some clients leave the mailto subject percent-encoded.
        for candidate in _TOKEN.findall(unquote(text)):
            seen_candidate = True
            try:
                links.read_unsubscribe(keys, candidate)
            except InvalidToken:
                continue
            return candidate, None
    return None, "forged or altered token" if seen_candidate else "no unsubscribe token"


def apply_token(db: Database, keys: Sequence[bytes], token: str) -> str:
    """Unsubscribe for one verified token: 'applied', 'already' or 'unknown'."""
    subscriber_id, topic_id = links.read_unsubscribe(keys, token)
    with immediate(db):
        if subscribers.get(db, subscriber_id) is None:
            return "unknown"
        changed = subscribers.unsubscribe(db, subscriber_id, topic_id, SOURCE)
    return "applied" if changed else "already"


def import_unsubscribes(
    db: Database,
    settings: Settings,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Apply every unsubscribe request in the mailbox at ``path``. Safe to run again:
    requests already applied count as ``already_unsubscribed``."""
    box = open_mailbox(Path(path))
    keys = link_keys(db, settings.secret)
    report = ImportReport()
    try:
        for mail_key, data in _messages(box):
            report.messages += 1
            _one(db, keys, mail_key, data, report)
            if progress:
                progress(1)
    except (OSError, mailbox.Error) as exc:
        raise NewsletterError(f"{path}: cannot read the mailbox: {exc}") from None
    finally:
        box.close()
    return report


def _one(
    db: Database, keys: Sequence[bytes], mail_key: str, data: bytes, report: ImportReport
) -> None:
    try:
        message = message_from_bytes(data, policy=policy.default)
        token, why = find_token(keys, message)  # type: ignore[arg-type]
        message_id = str(message.get("Message-ID", "") or "")
    except Exception as exc:  # a broken message must not stop the others
        token, why, message_id = None, f"unreadable message ({type(exc).__name__})", ""
    if token is None:
        report.invalid += 1
        report.problems.append({"message": mail_key, "message_id": message_id, "reason": why})
        return
    outcome = apply_token(db, keys, token)
    if outcome == "applied":
        report.applied += 1
    elif outcome == "already":
        report.already_unsubscribed += 1
    else:
        report.unknown += 1


def count_messages(path: Path) -> int:
    """How many messages the mailbox holds (for a progress bar)."""
    box = open_mailbox(Path(path))
    try:
        return len(box)
    finally:
        box.close()
