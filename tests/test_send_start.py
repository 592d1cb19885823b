"""The start of a send: the delivery log holds exactly the edition's recipients, however it
is cut into transactions, and the query behind it pages without a temporary B-tree."""

from __future__ import annotations

import random
import re
import sqlite3

import pytest
from send_helpers import make_edition, make_topic

from newsletter.audience import subscribers
from newsletter.delivery.pipeline import planning
from newsletter.errors import NewsletterError
from newsletter.store.db import open_db


def mixed_list(db, count: int, seed: int) -> tuple[int, int, int]:
    """People in two topics (and one more) in every state consent can be in."""
    rng = random.Random(seed)
    first, second = make_topic(db, "a", "A"), make_topic(db, "b", "B")
    other = make_topic(db, "c", "C")
    for number in range(count):
        topics = rng.sample([first, second, other], rng.randint(1, 3))
        status = "unconfirmed" if rng.random() < 0.15 else "confirmed"
        added = subscribers.add(db, f"p{number}@example.org", topic_ids=topics, status=status)
        person_id = added.subscriber_id
        roll = rng.random()
        if roll < 0.15:
            subscribers.unsubscribe(db, person_id, rng.choice(topics), "web")
        elif roll < 0.25:
            subscribers.set_status(db, person_id, "bounced", "bounce")
        elif roll < 0.3:
            subscribers.set_status(db, person_id, "blocklisted", "staff")
    return first, second, other


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_log_is_exactly_the_recipients_whatever_the_chunk(db, monkeypatch, seed):
    first, second, _other = mixed_list(db, 60, seed)
    monkeypatch.setattr(planning, "FIX_CHUNK", [1, 7, 50][seed])
    edition = planning.load_edition(db, make_edition(db, [first, second]))
    expected = [(r.id, r.topic_id) for r in subscribers.recipients(db, [first, second])]

    planning.start(db, edition, include_new=False)

    rows = db.execute(
        "SELECT subscriber_id, topic_id FROM deliveries WHERE edition_id = ? ORDER BY id",
        [edition.id],
    ).fetchall()
    assert [tuple(row) for row in rows] == expected  # in id order, lowest topic of the two
    assert 0 < len(expected) < 60
    assert planning.counts(db, edition.id) == {"pending": len(expected), "sent": 0, "failed": 0}


def test_a_start_cut_short_is_completed_by_the_next_send(db, settings, monkeypatch):
    topic, _second, _other = mixed_list(db, 40, 3)
    monkeypatch.setattr(planning, "FIX_CHUNK", 5)
    edition = planning.load_edition(db, make_edition(db, [topic]))
    expected = [r.id for r in subscribers.recipients(db, [topic])]
    calls = []
    original = subscribers.recipients_sql

    def dies_on_the_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a Ctrl-C (or a kill) part-way through
        return original(*args, **kwargs)

    monkeypatch.setattr(subscribers, "recipients_sql", dies_on_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        planning.start(db, edition, include_new=False)
    assert planning.status(db, edition.id)["status"] == "draft"
    partial = planning.counts(db, edition.id)["pending"]
    assert partial < len(expected)

    monkeypatch.setattr(subscribers, "recipients_sql", original)
    planning.start(db, edition, include_new=False)
    rows = db.execute(
        "SELECT subscriber_id FROM deliveries WHERE edition_id = ? ORDER BY subscriber_id",
        [edition.id],
    ).fetchall()
    assert [row[0] for row in rows] == expected
    assert planning.status(db, edition.id)["status"] == "sending"


@pytest.mark.parametrize(
    ("topic_ids", "walk"),
    [
        # One topic: its index entries in subscriber order, each person by primary key.
        (
            [1],
            ["COVERING INDEX subscriptions_topic", "SEARCH s USING INTEGER PRIMARY KEY (rowid=?)"],
        ),
        ([1, 1], ["COVERING INDEX subscriptions_topic (topic_id=? AND status=?"]),
        # Several: the people in id order, each one's subscriptions by primary key.
        ([1, 2], ["SEARCH s USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"]),
    ],
)
def test_paging_the_recipients_needs_no_temporary_b_tree(settings, topic_ids, walk):
    db = open_db(settings.db)
    try:
        sql, params = subscribers.recipients_sql(topic_ids, after_id=10, upto_id=20)
        plan = " | ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        db.close()
    assert "TEMP B-TREE" not in plan, plan
    for step in walk:
        assert step in plan, plan
    # Whether any import is running is asked once, before any person's journal lookup.
    assert plan.index("SCAN import_runs") < plan.index("CORRELATED SCALAR SUBQUERY"), plan


def test_the_log_skips_only_the_check_its_rows_satisfy(db):
    """The start writes the log with CHECK constraints off: the one on ``status`` is
    satisfied by the literal it writes, and any other CHECK would go unchecked."""
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'deliveries'").fetchone()[0]
    assert tuple(re.findall(r"CHECK \((?:[^()]|\([^()]*\))*\)", sql)) == planning.DELIVERY_CHECKS


@pytest.mark.parametrize("interrupted", [False, True])
def test_checks_and_foreign_keys_are_back_on_after_the_start(db, monkeypatch, interrupted):
    first, second, _other = mixed_list(db, 30, 4)
    edition = planning.load_edition(db, make_edition(db, [first, second]))
    monkeypatch.setattr(planning, "FIX_CHUNK", 4)
    if interrupted:
        original = db.execute

        def fails_in_a_chunk(sql, *args):
            if sql.startswith("INSERT OR IGNORE INTO deliveries"):
                raise KeyboardInterrupt
            return original(sql, *args)

        monkeypatch.setattr(db, "execute", fails_in_a_chunk)
        with pytest.raises(KeyboardInterrupt):
            planning.start(db, edition, include_new=False)
        monkeypatch.setattr(db, "execute", original)
    else:
        planning.start(db, edition, include_new=False)
    assert db.execute("PRAGMA ignore_check_constraints").fetchone()[0] == 0
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert not db.conn.in_transaction
    person = db.execute("SELECT MIN(id) FROM subscribers").fetchone()[0]
    insert = (
        "INSERT INTO deliveries (edition_id, subscriber_id, topic_id, status, created,"
        " updated) VALUES (?, ?, ?, ?, 'x', 'x')"
    )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        db.execute(insert, [edition.id, person, first, "lost"])
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
        db.execute(insert, [edition.id + 1, person, first, "pending"])


def test_an_edition_deleted_before_its_log_is_fixed_gets_no_rows(db, settings):
    """The log is written with foreign keys off and its parents checked once a chunk: an
    edition deleted meanwhile (by another connection) must not get orphan rows."""
    first, second, _other = mixed_list(db, 20, 5)
    edition = planning.load_edition(db, make_edition(db, [first, second]))
    other = open_db(settings.db)
    try:
        other.execute("DELETE FROM editions WHERE id = ?", [edition.id])
        other.conn.commit()
    finally:
        other.close()
    with pytest.raises(NewsletterError, match=f"edition {edition.id} or one of its topics"):
        planning._fix_recipients(db, edition)
    assert db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 0
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
