"""Exporting subscribers as CSV, Excel-ready CSV or JSON, streamed from one SQLite cursor.

Nothing is collected in memory, so a million subscribers export with flat memory. With a
topic (and no status, or ``active``) the rows are exactly that topic's recipients
(``subscribers.recipient_condition``): the people a send would mail. The columns are the
ones the importer reads back (``topics``, ``unsubscribed_from``, ``attributes``), so an
export imported into an empty database gives the same recipients and languages.
"""

from __future__ import annotations

import csv
import json
from typing import TextIO

from sqlite_utils import Database

from newsletter.audience import suppression_file
from newsletter.audience.subscribers import (
    STATUSES,
    SUBSCRIPTION_STATUSES,
    recipient_condition,
)
from newsletter.errors import NewsletterError

HEADER = (
    "email", "name", "lang", "status", "topics", "unsubscribed_from", "attributes",
    "subscribed_at",
)  # fmt: skip
FORMATS = ("csv", "json", "excel", "suppressions")
EXPORT_STATUSES = STATUSES + SUBSCRIPTION_STATUSES

# The person's confirmed topics as slugs joined by ";" in slug order.
_TOPICS = (
    "(SELECT group_concat(slug, ';') FROM (SELECT t.slug FROM subscriptions x"
    " JOIN topics t ON t.id = x.topic_id"
    " WHERE x.subscriber_id = s.id AND x.status = 'confirmed' ORDER BY t.slug))"
)
_LEFT = _TOPICS.replace("'confirmed'", "'unsubscribed'")
_ATTRIBUTES = "CASE WHEN s.attributes IN ('', '{}') THEN '' ELSE s.attributes END"
_FIRST_CONFIRMED = (
    "(SELECT MIN(x.updated) FROM subscriptions x"
    " WHERE x.subscriber_id = s.id AND x.status = 'confirmed')"
)


def _spreadsheet_safe(column: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheet programs; names come
    # from a public sign-up form, so such cells get a leading apostrophe (the importer
    # strips it again, so an export re-imports unchanged).
    return (
        f"CASE WHEN substr({column}, 1, 1) IN ('=', '+', '-', '@')"
        f" THEN '''' || {column} ELSE {column} END"
    )


def _source(topic_id: int | None, status: str | None) -> tuple[str, str, list[object]]:
    """(the subscribed_at expression, "FROM ... ORDER BY ...", parameters) of an export."""
    if status is not None and status not in EXPORT_STATUSES:
        raise NewsletterError(f"unknown status {status!r}: use one of {', '.join(EXPORT_STATUSES)}")
    if topic_id is not None and status in (None, "active"):
        condition, params = recipient_condition([topic_id])
        rest = (
            "FROM subscriptions sub JOIN subscribers s ON s.id = sub.subscriber_id"
            f" WHERE {condition}"
            # Not "ORDER BY s.id": the same order, but SQLite would sort every row in a
            # temporary b-tree before returning the first; the topic index is already in
            # subscriber order, so rows stream straight from it.
            " ORDER BY sub.subscriber_id"
        )
        return "sub.updated", rest, params
    where: list[str] = []
    params = []
    if status in STATUSES:
        where.append("s.status = ?")
        params.append(status)
    if topic_id is not None or status in SUBSCRIPTION_STATUSES:
        exists = "EXISTS (SELECT 1 FROM subscriptions x WHERE x.subscriber_id = s.id"
        if status in SUBSCRIPTION_STATUSES:
            exists += " AND x.status = ?"
            params.append(status)
        if topic_id is not None:
            exists += " AND x.topic_id = ?"
            params.append(topic_id)
        where.append(exists + ")")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return _FIRST_CONFIRMED, f"FROM subscribers s{clause} ORDER BY s.id", params


def export_query(
    *, topic_id: int | None = None, status: str | None = None, spreadsheet_safe: bool = False
) -> tuple[str, list[object]]:
    """The SELECT (and its parameters) whose rows are the export, in ``HEADER`` order.

    With ``topic_id`` alone (or with ``active``): that topic's recipients (active,
    confirmed), ``subscribed_at`` being when that subscription was confirmed. Otherwise
    every subscriber of ``status`` (a subscriber status, or a subscription status: of
    ``topic_id`` if given, else of any topic), ``subscribed_at`` their first confirmed
    subscription (empty if none).
    """
    subscribed_at, rest, params = _source(topic_id, status)
    email, name = "s.email", "s.name"
    if spreadsheet_safe:
        email, name = _spreadsheet_safe(email), _spreadsheet_safe(name)
    columns = (
        f"{email} AS email, {name} AS name, s.lang AS lang, s.status AS status,"
        f" {_TOPICS} AS topics, {_LEFT} AS unsubscribed_from, {_ATTRIBUTES} AS attributes,"
        f" {subscribed_at} AS subscribed_at"
    )
    return f"SELECT {columns} {rest}", params


def write_csv(
    db: Database,
    out: TextIO,
    *,
    topic_id: int | None = None,
    status: str | None = None,
    excel: bool = False,
) -> None:
    """CSV (RFC 4180: CRLF, header row) to ``out``, which should be opened with ``newline=""``.

    ``excel``: what Excel in a Finnish (or Swedish, German ...) locale opens as columns on
    a double click: a UTF-8 byte order mark and ``;`` between the cells.
    """
    sql, params = export_query(topic_id=topic_id, status=status, spreadsheet_safe=True)
    if excel:
        out.write("\ufeff")
    writer = csv.writer(out, delimiter=";" if excel else ",")
    writer.writerow(HEADER)
    # writerows pulls from the cursor one row at a time: never a fetchall. (Building the
    # CSV lines inside SQLite instead was measured: no faster.)
    writer.writerows(db.execute(sql, params))


def write_json(
    db: Database, out: TextIO, *, topic_id: int | None = None, status: str | None = None
) -> None:
    """A JSON list of objects with the CSV's keys (``topics`` a list), written row by row."""
    sql, params = export_query(topic_id=topic_id, status=status)
    out.write("[")
    separator = "\n"
    for email, name, lang, state, topics, left, attributes, subscribed_at in db.execute(
        sql, params
    ):
        item = {
            "email": email,
            "name": name,
            "lang": lang,
            "status": state,
            "topics": topics.split(";") if topics else [],
            "unsubscribed_from": left.split(";") if left else [],
            "attributes": json.loads(attributes) if attributes else {},
            "subscribed_at": subscribed_at,
        }
        out.write(separator + json.dumps(item, ensure_ascii=False))
        separator = ",\n"
    out.write("\n]\n" if separator != "\n" else "]\n")


def write_export(
    db: Database,
    out: TextIO,
    *,
    fmt: str = "csv",
    topic_id: int | None = None,
    status: str | None = None,
) -> None:
    if fmt not in FORMATS:
        raise NewsletterError(f"unknown format {fmt!r}: use csv, excel, json or suppressions")
    if fmt == "suppressions":
        if topic_id is not None or status is not None:
            raise NewsletterError("the suppression list is for every topic: no --topic, --status")
        suppression_file.write(db, out)
    elif fmt == "json":
        write_json(db, out, topic_id=topic_id, status=status)
    else:
        write_csv(db, out, topic_id=topic_id, status=status, excel=fmt == "excel")
