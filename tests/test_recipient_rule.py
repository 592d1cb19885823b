"""Who is a recipient, on random subscriber states: the recipient queries (one topic or
several, any page, any chunk of the delivery log) give exactly the people the consent rule
names. The rule is written out here a second time, in Python, one person at a time."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from send_helpers import make_edition, make_topic

from newsletter.audience import subscribers
from newsletter.delivery.pipeline import planning
from newsletter.errors import NewsletterError

STAMP = "2025-10-01T08:00:00+00:00"
TOPICS = 3  # topics 0..2 of the test (their ids are the fixture's)


@dataclass(frozen=True)
class Person:
    id: int
    status: str  # active, bounced, blocklisted
    unsubscribed_all: bool
    subscriptions: dict[int, str]  # topic index -> unconfirmed, confirmed, unsubscribed
    # topic index -> (the journalling import's status, the status the import wrote)
    journal: dict[int, tuple[str, str]]


def person(ident: int) -> st.SearchStrategy[Person]:
    topic = st.integers(0, TOPICS - 1)
    return st.builds(
        Person,
        id=st.just(ident),
        status=st.sampled_from(["active", "active", "active", "bounced", "blocklisted"]),
        unsubscribed_all=st.sampled_from([False, False, False, True]),
        subscriptions=st.dictionaries(
            topic, st.sampled_from(["confirmed", "confirmed", "unconfirmed", "unsubscribed"])
        ),
        journal=st.dictionaries(
            topic,
            st.tuples(
                st.sampled_from(["running", "done", "undone"]),
                st.sampled_from(["confirmed", "unconfirmed"]),
            ),
            max_size=2,
        ),
    )


# Ids with gaps (erased people, a freed range), in any order of states.
PEOPLE = st.lists(st.integers(1, 60), max_size=14, unique=True).flatmap(
    lambda ids: st.tuples(*(person(i) for i in sorted(ids)))
)


def rule(
    people: tuple[Person, ...], chosen: list[int], import_running: bool
) -> list[tuple[int, int]]:
    """(person id, topic index) of each recipient of the topics, by id: active, not
    unsubscribed from everything, with a confirmed subscription to one of them that no
    still-running import wrote; mailed for the lowest such topic. Without
    ``import_running`` the import journalled as running has finished."""
    found = []
    for one in people:
        if one.status != "active" or one.unsubscribed_all:
            continue
        open_topics = [
            t
            for t in set(chosen)
            if one.subscriptions.get(t) == "confirmed"
            and not (import_running and one.journal.get(t) == ("running", "confirmed"))
        ]
        if open_topics:
            found.append((one.id, min(open_topics)))
    return found


def store(db, people: tuple[Person, ...], topic_ids: list[int], import_running: bool) -> None:
    """The people as rows, written directly: every combination, reachable or not."""
    with db.atomic():
        for table in ("editions", "import_runs", "subscribers"):
            db.execute(f"DELETE FROM {table}")  # cascades to their rows elsewhere
        runs = {}
        for status in ("running", "done", "undone"):
            cursor = db.execute(
                "INSERT INTO import_runs (source, stamp, first_event_id, pid, host, status,"
                " started) VALUES ('test.csv', ?, 0, 1, 'host', ?, ?)",
                [STAMP, status, STAMP],
            )
            runs[status] = cursor.lastrowid
        if not import_running:  # no import running at all, the usual case
            db.execute("UPDATE import_runs SET status = 'done' WHERE id = ?", [runs["running"]])
        for one in people:
            db.execute(
                "INSERT INTO subscribers (id, email, email_key, name, lang, status,"
                " unsubscribed_all, created, updated) VALUES (?, ?, ?, '', 'fi', ?, ?, ?, ?)",
                [one.id, f"p{one.id}@example.org", f"p{one.id}@example.org", one.status,
                 STAMP if one.unsubscribed_all else None, STAMP, STAMP],
            )  # fmt: skip
            for t, status in one.subscriptions.items():
                db.execute(
                    "INSERT INTO subscriptions (subscriber_id, topic_id, status, created,"
                    " updated) VALUES (?, ?, ?, ?, ?)",
                    [one.id, topic_ids[t], status, STAMP, STAMP],
                )
            for t, (run, new) in one.journal.items():
                db.execute(
                    "INSERT INTO import_undo (import_id, kind, subscriber_id, topic_id, old,"
                    " new) VALUES (?, 'sub_status', ?, ?, 'unconfirmed', ?)",
                    [runs[run], one.id, topic_ids[t], new],
                )


def as_index(topic_ids: list[int], rows) -> list[tuple[int, int]]:
    return [(row[0], topic_ids.index(row[1])) for row in rows]


@pytest.fixture
def topic_ids(db) -> list[int]:
    return [make_topic(db, slug, slug.upper()) for slug in ("a", "b", "c")]


RANDOM_STATES = hsettings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@RANDOM_STATES
@given(
    people=PEOPLE,
    chosen=st.lists(st.integers(0, TOPICS - 1), min_size=1, max_size=4),
    import_running=st.booleans(),
    after=st.integers(0, 61),
    limit=st.integers(1, 15),
)
def test_the_recipient_queries_name_exactly_the_rules_people(
    db, topic_ids, people, chosen, import_running, after, limit
):
    store(db, people, topic_ids, import_running)
    ids = [topic_ids[t] for t in chosen]  # a topic may be named twice
    expected = rule(people, chosen, import_running)

    found = as_index(topic_ids, ((r.id, r.topic_id) for r in subscribers.recipients(db, ids)))
    assert found == expected
    assert subscribers.count_recipients(db, ids) == len(expected)
    page = subscribers.recipients(db, ids, after_id=after, limit=limit)
    assert (
        as_index(topic_ids, ((r.id, r.topic_id) for r in page))
        == [row for row in expected if row[0] > after][:limit]
    )
    sql, params = subscribers.recipients_sql(ids, after_id=after, upto_id=after + limit)
    assert as_index(topic_ids, (row[::4] for row in db.execute(sql, params))) == [
        row for row in expected if after < row[0] <= after + limit
    ]
    pairs = [(one.id, topic_ids[t]) for one in people for t in range(TOPICS)]
    assert {(s, topic_ids.index(t)) for s, t in subscribers.mailable(db, pairs)} == {
        (one.id, t) for one in people for t in range(TOPICS) if rule((one,), [t], import_running)
    }


@RANDOM_STATES
@given(
    people=PEOPLE,
    chosen=st.sets(st.integers(0, TOPICS - 1), min_size=1),
    import_running=st.booleans(),
    chunk=st.integers(1, 70),
)
def test_the_delivery_log_is_exactly_the_rules_people_whatever_the_chunk(
    db, topic_ids, people, chosen, import_running, chunk
):
    store(db, people, topic_ids, import_running)
    expected = rule(people, sorted(chosen), import_running)
    edition = planning.load_edition(db, make_edition(db, [topic_ids[t] for t in chosen]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(planning, "FIX_CHUNK", chunk)
        if not expected:
            with pytest.raises(NewsletterError, match="has no recipients"):
                planning.start(db, edition, include_new=False)
            assert planning.status(db, edition.id)["status"] == "draft"
            return
        planning.start(db, edition, include_new=False)
    rows = db.execute(
        "SELECT subscriber_id, topic_id, status, lang FROM deliveries WHERE edition_id = ?"
        " ORDER BY id",
        [edition.id],
    ).fetchall()
    assert as_index(topic_ids, rows) == expected  # in id order, each once
    assert {(row[2], row[3]) for row in rows} == {("pending", "fi")}
