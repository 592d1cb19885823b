"""The end of a run: the edition's final status, the counts, and a line saying why it
stopped and how to continue."""

from __future__ import annotations

from sqlite_utils import Database

from newsletter.clock import now_iso
from newsletter.delivery.pipeline.jobs import SendReport
from newsletter.delivery.pipeline.planning import counts
from newsletter.delivery.pipeline.results import Recorder, writing


def finish(db: Database, edition_id: int, run: Recorder) -> SendReport:
    """Mark the edition ``sent`` or ``paused`` (unless another send owns it now)."""
    report = run.report
    numbers = counts(db, edition_id)
    report.sent, report.failed, report.pending = (
        numbers["sent"],
        numbers["failed"],
        numbers["pending"],
    )
    report.total = sum(numbers.values())
    final = "sent" if report.pending == 0 else "paused"
    if run.stop_reason == "lock lost":
        # Another send owns the edition now: its status is not ours to change.
        report.status = db.execute(
            "SELECT status FROM editions WHERE id = ?", [edition_id]
        ).fetchone()[0]
        report.outcome = run.stop_reason
        report.message = explain(db, edition_id, run)
        return report
    with writing(db):
        db.execute(
            "UPDATE editions SET status = ?, updated = ?,"
            " sent_at = CASE WHEN ? = 'sent' THEN COALESCE(sent_at, ?) ELSE sent_at END"
            " WHERE id = ?",
            [final, now_iso(), final, now_iso(), edition_id],
        )
    report.status = final
    report.outcome = "done" if final == "sent" else (run.stop_reason or "paused")
    report.message = explain(db, edition_id, run)
    return report


def explain(db: Database, edition_id: int, run: Recorder) -> str:
    """Why rows are still pending and what to do; empty when none are."""
    pending = run.report.pending
    resume = f"run `newsletter send {edition_id}` again to continue"
    if pending == 0:
        return ""
    if run.stop_reason == "interrupted":
        return f"stopped; {pending} still pending: {resume}"
    if run.stop_reason == "paused":
        return (
            f"paused after {run.options.max_errors} errors in a row"
            f" (last: {_last_error(db, edition_id)}); {pending} still pending:"
            f" fix the cause, then {resume}"
        )
    if run.stop_reason == "lock lost":
        return (
            f"stopped: another send of edition {edition_id} took over the lock"
            f" while this one did not respond; {pending} still pending"
        )
    if run.stop_reason == "unreachable" and run.fatal is not None:
        return f"{run.fatal}; {pending} still pending: {resume}"
    return f"{pending} still pending: {resume}"


def _last_error(db: Database, edition_id: int) -> str:
    row = db.execute(
        "SELECT last_reply FROM deliveries WHERE edition_id = ? AND last_reply IS NOT NULL"
        " AND (status != 'sent') ORDER BY updated DESC, id DESC LIMIT 1",
        [edition_id],
    ).fetchone()
    return row[0] if row else "unknown"
