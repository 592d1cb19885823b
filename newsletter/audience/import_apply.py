"""Merging one imported person into the database, inside the chunk's transaction.

The rules that keep consent: an import never re-subscribes someone who unsubscribed from
a topic, whose address is on the suppression list (erased or blocked), or who bounced or
is blocklisted here; people the file says had left arrive unsubscribed (if known) or only
as a suppression hash (if not: nothing else about them is kept); an import never demotes a
confirmed subscription. Every change is also journalled (``Plan.undo``) so a failed import
can be undone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sqlite_utils import Database

from newsletter.audience.import_columns import LEFT_STATES, Record
from newsletter.audience.subscribers import SUBSCRIPTION_ACTIONS

if TYPE_CHECKING:
    from newsletter.audience.importer import ImportReport

# The reasons a row was not subscribed (ImportReport.left), as the report words them.
REASONS = {
    "suppression_list": "on the suppression list (left, erased or blocked)",
    "unsubscribed": "had unsubscribed (the file says so)",
    "unsubscribed_here": "had unsubscribed here from an imported topic",
    "bounced": "bounced",
    "blocklisted": "blocklisted or marked as spam",
}


@dataclass
class Plan:
    """The fixed parameters of one import run, and what it learns on the way."""

    topic_ids: Sequence[int]
    status: str  # "unconfirmed" or "confirmed"
    source: str
    default_lang: str
    stamp: str
    dry_run: bool = False
    suppress: bool = False  # every row is someone who left (``import --suppress``)
    import_id: int | None = None
    row_topics: dict[str, int] = field(default_factory=dict)  # a row's topic text -> id
    created_topics: list[str] = field(default_factory=list)
    undo: list[tuple] = field(default_factory=list)  # this chunk's journal rows


@dataclass
class Batch:
    """What the database holds about one chunk's addresses."""

    existing: dict[str, tuple]  # key -> (id, name, lang, status, attributes)
    suppressed: dict[str, str]  # key -> reason
    subscriptions: dict[int, dict[int, str]]  # subscriber id -> {topic id: status}
    hashes: dict[str, str]  # key -> suppression hash
    all_out: set[int] = field(default_factory=set)  # ids unsubscribed from everything
    stamps: dict[int, str] = field(default_factory=dict)  # id -> the person's ``updated``


@dataclass
class Writes:
    people: list[tuple] = field(default_factory=list)
    person_updates: list[tuple] = field(default_factory=list)
    status_updates: list[tuple] = field(default_factory=list)
    new_subs: list[tuple] = field(default_factory=list)
    sub_updates: list[tuple] = field(default_factory=list)
    suppressions: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)

    def flush(self, db: Database) -> None:
        conn = db.conn
        conn.executemany(
            "INSERT INTO subscribers (id, email, email_key, name, lang, attributes, status,"
            " created, updated) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
            self.people,
        )
        conn.executemany(
            "UPDATE subscribers SET name = ?, lang = ?, attributes = ?, updated = ? WHERE id = ?",
            self.person_updates,
        )
        conn.executemany(
            "UPDATE subscribers SET status = ?, updated = ? WHERE id = ?", self.status_updates
        )
        conn.executemany(
            "INSERT INTO subscriptions (subscriber_id, topic_id, status, created, updated)"
            " VALUES (?, ?, ?, ?, ?)",
            self.new_subs,
        )
        conn.executemany(
            "UPDATE subscriptions SET status = ?, updated = ?"
            " WHERE subscriber_id = ? AND topic_id = ?",
            self.sub_updates,
        )
        conn.executemany(
            "INSERT OR IGNORE INTO suppressions (hash, reason, created) VALUES (?, ?, ?)",
            self.suppressions,
        )
        conn.executemany(
            "INSERT INTO events (subscriber_id, time, action, topic_id, source, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            self.events,
        )


def _set_sub(
    plan: Plan, writes: Writes, sid: int, tid: int, current: str | None, status: str
) -> None:
    """One subscription to ``status`` (from ``current``, None if there was none), journalled."""
    stamp = plan.stamp
    if current is None:
        writes.new_subs.append((sid, tid, status, stamp, stamp))
        plan.undo.append((plan.import_id, "sub_new", sid, tid, None, status))
    else:
        writes.sub_updates.append((status, stamp, sid, tid))
        plan.undo.append((plan.import_id, "sub_status", sid, tid, current, status))
    writes.events.append((sid, stamp, SUBSCRIPTION_ACTIONS[status], tid, plan.source, None))


def _topics(plan: Plan, rec: Record) -> tuple[list[int], list[int]]:
    """(topics to subscribe, topics the row says the person left)."""
    left = list(dict.fromkeys(plan.row_topics[text] for text in rec.left_topics))
    wanted = [*plan.topic_ids, *(plan.row_topics[text] for text in rec.topics)]
    return [tid for tid in dict.fromkeys(wanted) if tid not in left], left


def _row_status(plan: Plan, rec: Record, report: ImportReport) -> str:
    if rec.state == "pending" and plan.status == "confirmed":
        report.no_consent += 1  # --confirmed, but the file says consent was never given
        return "unconfirmed"
    return plan.status


def _add_person(
    plan: Plan, writes: Writes, sid: int, rec: Record, later_name: str | None,
    report: ImportReport,
) -> None:  # fmt: skip
    stamp, source = plan.stamp, plan.source
    name, lang = rec.name or later_name or "", rec.lang or plan.default_lang
    attributes = rec.attributes or "{}"
    writes.people.append((sid, rec.email, rec.key, name, lang, attributes, stamp, stamp))
    writes.events.append((sid, stamp, "create", None, source, None))
    wanted, left = _topics(plan, rec)
    status = _row_status(plan, rec, report) if wanted else plan.status
    for tid in wanted:
        _set_sub(plan, writes, sid, tid, None, status)
    for tid in left:
        _set_sub(plan, writes, sid, tid, None, "unsubscribed")
    if wanted and status == "unconfirmed":
        report.pending_ids.append(sid)


def _journal_stamp(plan: Plan, sid: int, old: str | None) -> None:
    """The person's ``updated`` before this import touched it, for the undo to put back."""
    if old is not None:
        plan.undo.append((plan.import_id, "stamp", sid, None, old, plan.stamp))


def _merge_details(
    plan: Plan, writes: Writes, rec: Record, known: tuple, stamp: str | None = None
) -> bool:
    """A new name, language or attributes for a known person; False when none changed."""
    sid, old_name, old_lang, _status, old_attributes = known
    changes: dict[str, object] = {}
    if rec.name and rec.name != old_name:
        changes["name"] = rec.name
    if rec.lang and rec.lang != old_lang:
        changes["lang"] = rec.lang
    attributes = old_attributes or "{}"
    if rec.attributes:
        try:
            merged = json.loads(attributes)
        except ValueError:
            merged = {}
        new = json.loads(rec.attributes)
        changed_keys = sorted(k for k, v in new.items() if merged.get(k) != v)
        if changed_keys:
            merged.update(new)
            attributes = json.dumps(merged, ensure_ascii=False)
            changes["attributes"] = changed_keys
    if not changes:
        return False
    writes.person_updates.append(
        (changes.get("name", old_name), changes.get("lang", old_lang), attributes, plan.stamp, sid)
    )
    old = {"name": old_name, "lang": old_lang, "attributes": old_attributes}
    plan.undo.append((plan.import_id, "details", sid, None, json.dumps(old), None))
    _journal_stamp(plan, sid, stamp)
    detail = json.dumps(changes, ensure_ascii=False)
    writes.events.append((sid, plan.stamp, "update", None, plan.source, detail))
    return True


def _update_person(
    plan: Plan, writes: Writes, batch: Batch, rec: Record, report: ImportReport
) -> tuple[bool, bool, bool]:
    """Merge a row into a known person: (changed, refused a topic, has a pending topic)."""
    known = batch.existing[rec.key]
    sid = known[0]
    changed = _merge_details(plan, writes, rec, known, batch.stamps.get(sid))
    current_subs = batch.subscriptions.get(sid, {})
    wanted, left = _topics(plan, rec)
    status = _row_status(plan, rec, report) if wanted else plan.status
    refused = pending = False
    for tid in wanted:
        current = current_subs.get(tid)
        if current == "unsubscribed" or sid in batch.all_out:
            refused = True  # they left: an import never brings them back
            continue
        if current is None or (current == "unconfirmed" and status == "confirmed"):
            _set_sub(plan, writes, sid, tid, current, status)
            changed = True
            pending |= status == "unconfirmed"
        else:
            # Already confirmed (an import never demotes), or unconfirmed either way.
            pending |= current == "unconfirmed"
    for tid in left:
        current = current_subs.get(tid)
        if current != "unsubscribed":
            _set_sub(plan, writes, sid, tid, current, "unsubscribed")
            changed = True
    return changed, refused, pending


def _leave(plan: Plan, writes: Writes, batch: Batch, rec: Record) -> None:
    """The file says a known person left: unsubscribe them everywhere, or mark the status."""
    sid, _name, _lang, status, _attributes = batch.existing[rec.key]
    if rec.state == "unsubscribed":
        current_subs = batch.subscriptions.get(sid, {})
        wanted, left = _topics(plan, rec)
        for tid in dict.fromkeys([*current_subs, *wanted, *left]):
            current = current_subs.get(tid)
            if current != "unsubscribed":
                _set_sub(plan, writes, sid, tid, current, "unsubscribed")
        return
    # bounced or blocklisted: a blocklisted person is never lowered to bounced
    if status != rec.state and status != "blocklisted":
        writes.status_updates.append((rec.state, plan.stamp, sid))
        plan.undo.append((plan.import_id, "status", sid, None, status, rec.state))
        _journal_stamp(plan, sid, batch.stamps.get(sid))
        writes.events.append((sid, plan.stamp, f"status:{rec.state}", None, plan.source, None))


def _suppress_new(plan: Plan, writes: Writes, batch: Batch, rec: Record) -> None:
    """Someone unknown here who had left: only the keyed hash of the address is kept."""
    digest, reason = batch.hashes[rec.key], f"{rec.state}:{plan.source}"
    writes.suppressions.append((digest, reason, plan.stamp))
    plan.undo.append((plan.import_id, "suppression", None, None, digest, reason))


def _count_suppressed(report: ImportReport, reason: str) -> None:
    report.suppressed += 1
    report.left[reason] += 1


def apply_record(
    plan: Plan, writes: Writes, batch: Batch, rec: Record, later_name: str | None,
    new_id: int, report: ImportReport,
) -> bool:  # fmt: skip
    """Merge one person (the first row of their address); True when ``new_id`` was used."""
    if plan.suppress and rec.state not in LEFT_STATES:
        rec = replace(rec, state="unsubscribed")
    if rec.key in batch.suppressed:
        _count_suppressed(report, "suppression_list")
        return False
    known = batch.existing.get(rec.key)
    if rec.state in LEFT_STATES:
        if known is None:
            _suppress_new(plan, writes, batch, rec)
        else:
            _leave(plan, writes, batch, rec)
        _count_suppressed(report, rec.state)
        return False
    if known is None:
        _add_person(plan, writes, new_id, rec, later_name, report)
        report.added += 1
        return True
    if known[3] != "active":
        # Bounced or blocklisted here: an import neither subscribes nor reactivates them.
        _count_suppressed(report, known[3])
        return False
    changed, refused, pending = _update_person(plan, writes, batch, rec, report)
    if pending:
        report.pending_ids.append(known[0])
    if refused:
        _count_suppressed(report, "unsubscribed_here")
    elif changed:
        report.updated += 1
    else:
        report.unchanged += 1
    return False
