"""`newsletter digest`: the weekly routine in one idempotent step, safe under cron.

Import the topic's feeds, build an edition when there are articles newer than the topic's
latest edition that went out, pass the pre-send check, send. Each step finds what an earlier
run left, so running it again changes nothing once an edition has gone out:

- an edition a digest built and did not finish (a crash, a paused send) is resumed first,
  never built twice;
- with nothing new, nothing is built or sent;
- two runs at once cannot interleave: the second finds the topic's lock taken and stops;
- while the last edition that went out bounced above 2% or drew complaints above 0.1%,
  nothing is built or sent (``digest.send_despite_bounces`` sends anyway, with the warning):
  nobody is at the terminal to read the warning `send` prints.

The lock is an OS file lock beside the database (``flock``), held for the whole run and
released by the kernel if the process dies, so a crashed run never blocks the next one. It
is not a database lock: unsubscribes and the web service keep writing meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from newsletter.audience import subscribers
from newsletter.clock import now_iso
from newsletter.config import Settings
from newsletter.content import editions, selection, topics
from newsletter.content.topics import slugify
from newsletter.delivery import checks, pipeline
from newsletter.delivery.bounces.record import last_edition_warning
from newsletter.errors import NewsletterError

Sender = Callable[[int], pipeline.SendReport]


class DigestBusy(NewsletterError):
    """Another digest of the same topic is running."""


@dataclass
class DigestResult:
    topic: str
    feeds: list[str]
    # "nothing new", "built and sent", "resumed", or with --dry-run "would ..."
    action: str
    dry_run: bool = False
    imported: int = 0
    updated: int = 0
    new_articles: int = 0
    recipients: int = 0
    edition: int | None = None
    report: pipeline.SendReport | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the last edition's bounce rate

    @property
    def incomplete(self) -> bool:
        """The run left something to do (pending recipients, a feed that failed)."""
        return bool(self.errors) or (self.report is not None and self.report.pending > 0)

    def as_json(self) -> dict:
        return {
            "topic": self.topic,
            "feeds": self.feeds,
            "action": self.action,
            "dry_run": self.dry_run,
            "imported": self.imported,
            "updated": self.updated,
            "new_articles": self.new_articles,
            "recipients": self.recipients,
            "edition": self.edition,
            "send": self.report.as_dict() if self.report else None,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def lock_path(settings: Settings, topic_slug: str) -> Path:
    db = Path(settings.db)
    return db.with_name(f"{db.name}.digest-{topic_slug}.lock")


@contextlib.contextmanager
def topic_lock(settings: Settings, topic_slug: str) -> Iterator[None]:
    """Hold the topic's digest lock, or raise DigestBusy at once (cron must not pile up)."""
    path = lock_path(settings, topic_slug)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DigestBusy(
                f"another `newsletter digest --topic {topic_slug}` is running; nothing done"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def unfinished_edition(db: Database, topic_id: int) -> int | None:
    """The latest edition a digest built for the topic that has not wholly gone out."""
    row = db.execute(
        "SELECT e.id FROM digest_editions d JOIN editions e ON e.id = d.edition_id"
        " WHERE d.topic_id = ? AND e.status != 'sent' ORDER BY e.id DESC LIMIT 1",
        [topic_id],
    ).fetchone()
    return row[0] if row else None


def run(
    db: Database,
    settings: Settings,
    topic: str,
    *,
    feeds: list[str] | None = None,
    dry_run: bool = False,
    out: Path = Path("editions"),
    send: Sender | None = None,
) -> DigestResult:
    """One digest of ``topic``: see the module docstring. ``send`` (edition id -> report)
    delivers; by default ``pipeline.send`` with the configured rate and concurrency."""
    subscribers.recover_imports(db)  # a dead import's half is nobody's consent
    slug = slugify(topic)
    if not slug:
        raise NewsletterError(f"topic {topic!r} has no letters or digits")
    sources = [*settings.feeds_for(slug), *(feeds or [])]
    result = DigestResult(topic=slug, feeds=sources, action="", dry_run=dry_run)
    if dry_run:
        return _plan(db, settings, topic, result)
    with topic_lock(settings, slug):
        _import(db, settings, topic, result)
        found = topics.resolve(db, topic)
        result.topic = found.slug
        edition_id = unfinished_edition(db, found.id)
        if edition_id is None:
            chosen, _ = _news(db, settings, found)
            result.new_articles = len(chosen)
            if not chosen:
                result.action = "nothing new"
                return result
        # Before building: a refused run leaves no draft behind for the next one.
        if not _reputation_allows(db, settings, result, edition_id):
            return result
        if edition_id is not None:
            result.action = "resumed"
        else:
            edition_id = _build(db, settings, found, out)
            result.action = "built and sent"
        result.edition = edition_id
        checks.before_send(db, settings, edition_id)  # what `send` without --force refuses
        deliver = send or (lambda eid: pipeline.send(db, settings, eid))
        result.report = deliver(edition_id)
    return result


REFUSED = "the last edition bounced or drew complaints above the limits"


def _reputation_allows(
    db: Database, settings: Settings, result: DigestResult, edition_id: int | None
) -> bool:
    """Whether the last edition that went out (before ``edition_id``) lets an unattended
    run send; its warning goes into ``result`` either way, the refusal into its errors."""
    warning = last_edition_warning(db, edition_id or 0)  # 0: no edition has that id
    if warning is None:
        return True
    result.warnings.append(warning)
    if settings.digest_send_despite_bounces:
        return True
    result.action = f"would send nothing: {REFUSED}" if result.dry_run else f"not sent: {REFUSED}"
    result.errors.append(
        "digest sent nothing: clean the list (`newsletter status` of that edition), or set"
        " digest.send_despite_bounces = true to send anyway"
    )
    return False


def _import(db: Database, settings: Settings, topic: str, result: DigestResult) -> None:
    if not result.feeds:
        return
    from newsletter.content import intake  # the feed parsers load only when there are feeds

    report = intake.import_sources(db, settings, result.feeds, [topic])
    result.imported, result.updated = report.imported, report.updated
    result.errors.extend(report.errors)
    if len(report.errors) == len(result.feeds):
        # Not one feed could be read: building from old articles would hide the fault.
        raise NewsletterError(f"no feed of {result.topic} could be read: {report.errors[0]}")


def _news(db: Database, settings: Settings, topic: topics.Topic) -> tuple[list, str]:
    """Articles newer than the topic's latest edition that went out (build's own window)."""
    return selection.select_articles(
        db, [topic], since=None, until=None, limit=None, tz=settings.tz
    )


def _build(db: Database, settings: Settings, topic: topics.Topic, out: Path) -> int:
    built = editions.build(
        db,
        settings,
        topics=[topic.slug],
        since=None,
        until=None,
        limit=None,
        subject=None,
        intro=None,
        lang=None,
        template=None,
        out=out,
    )
    with db.atomic():
        db.execute(
            "INSERT INTO digest_editions (edition_id, topic_id, created) VALUES (?, ?, ?)",
            [built.edition_id, topic.id, now_iso()],
        )
    return built.edition_id


def _plan(db: Database, settings: Settings, topic: str, result: DigestResult) -> DigestResult:
    """--dry-run: what a run would do with the articles stored now (feeds are not read)."""
    found = topics.find(db, topic)
    if found is None:
        result.action = "would import, then build if the feeds have articles"
        return result
    result.topic = found.slug
    edition_id = unfinished_edition(db, found.id)
    if edition_id is not None:
        result.action, result.edition = "would resume", edition_id
        result.recipients = pipeline.plan(db, edition_id)[0]
        if _reputation_allows(db, settings, result, edition_id):
            _would_pass(db, settings, result)
        return result
    chosen, _ = _news(db, settings, found)
    result.new_articles = len(chosen)
    result.recipients = subscribers.count_recipients(db, [found.id])
    result.action = "would build and send" if chosen else "nothing new"
    if chosen and _reputation_allows(db, settings, result, None):
        _would_pass(db, settings, result)
    return result


def _would_pass(db: Database, settings: Settings, result: DigestResult) -> None:
    """A dry run reports what the pre-send check would refuse instead of stopping there."""
    try:
        checks.before_send(db, settings, result.edition)
    except NewsletterError as exc:
        result.action += ", but the pre-send check refuses"
        result.errors.append(str(exc))
