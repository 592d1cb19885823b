"""Append-only schema migrations. Never edit one that has shipped: add a new function.

Every table the tool uses is here, so later features only ever add migrations.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("newsletter")


def _script(db: Database, sql: str) -> None:
    """Run statements one by one: ``executescript`` would COMMIT the migration's transaction."""
    statement = ""
    for line in sql.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement: {statement!r}")


@migrations()
def m001_topics_and_articles(db: Database) -> None:
    _script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE topics (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            created TEXT NOT NULL
        );
        CREATE TABLE articles (
            id INTEGER PRIMARY KEY,
            guid TEXT NOT NULL UNIQUE,
            url TEXT NOT NULL,
            title TEXT NOT NULL,
            summary TEXT NOT NULL DEFAULT '',
            published TEXT NOT NULL,
            category TEXT,
            image TEXT,
            image_alt TEXT,
            source TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE INDEX articles_published ON articles (published);
        CREATE INDEX articles_url ON articles (url);
        CREATE TABLE article_topics (
            article_id INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
            topic_id INTEGER NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
            PRIMARY KEY (article_id, topic_id)
        );
        CREATE INDEX article_topics_topic ON article_topics (topic_id, article_id);
        """,
    )


@migrations()
def m002_subscribers(db: Database) -> None:
    _script(
        db,
        """
        CREATE TABLE subscribers (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL,
            email_key TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL DEFAULT '',
            lang TEXT NOT NULL DEFAULT 'fi' CHECK (lang IN ('fi', 'sv', 'en')),
            status TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'bounced', 'blocklisted')),
            hard_bounces INTEGER NOT NULL DEFAULT 0,
            attributes TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE TABLE subscriptions (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
            topic_id INTEGER NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
            status TEXT NOT NULL
                CHECK (status IN ('unconfirmed', 'confirmed', 'unsubscribed')),
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, topic_id)
        );
        CREATE INDEX subscriptions_topic ON subscriptions (topic_id, status, subscriber_id);
        -- Proof of consent: every change of a subscription or status is an event.
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
            time TEXT NOT NULL,
            action TEXT NOT NULL,
            topic_id INTEGER REFERENCES topics (id) ON DELETE SET NULL,
            source TEXT NOT NULL,
            detail TEXT
        );
        CREATE INDEX events_subscriber ON events (subscriber_id, id);
        -- Erased addresses survive only as a keyed hash, so imports cannot bring them back.
        CREATE TABLE suppressions (
            hash TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            created TEXT NOT NULL
        );
        """,
    )


@migrations()
def m003_editions_and_deliveries(db: Database) -> None:
    _script(
        db,
        """
        CREATE TABLE editions (
            id INTEGER PRIMARY KEY,
            subject TEXT NOT NULL,
            preheader TEXT NOT NULL DEFAULT '',
            lang TEXT NOT NULL,
            intro TEXT NOT NULL DEFAULT '',
            template TEXT NOT NULL,
            html TEXT NOT NULL,
            text TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'sending', 'paused', 'sent')),
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            sent_at TEXT,
            lock_owner TEXT,
            lock_pid INTEGER,
            lock_host TEXT,
            lock_heartbeat TEXT
        );
        CREATE TABLE edition_topics (
            edition_id INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
            topic_id INTEGER NOT NULL REFERENCES topics (id),
            PRIMARY KEY (edition_id, topic_id)
        );
        CREATE TABLE edition_articles (
            edition_id INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
            article_id INTEGER NOT NULL REFERENCES articles (id),
            position INTEGER NOT NULL,
            PRIMARY KEY (edition_id, article_id)
        );
        -- The delivery log: one row per recipient, fixed when a send starts.
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            edition_id INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
            subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE SET NULL,
            topic_id INTEGER REFERENCES topics (id),
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_reply TEXT,
            reason TEXT,
            message_id TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            UNIQUE (edition_id, subscriber_id)
        );
        CREATE INDEX deliveries_pending ON deliveries (edition_id, status, id);
        """,
    )


@migrations()
def m004_web_signup_attempts(db: Database) -> None:
    # Sign-up rate limiting that holds across threads and restarts. Only keyed hashes of
    # the address and of the client network are kept, never the values themselves.
    _script(
        db,
        """
        CREATE TABLE web_signup_attempts (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL CHECK (scope IN ('email', 'ip')),
            hash TEXT NOT NULL,
            time TEXT NOT NULL
        );
        CREATE INDEX web_signup_attempts_key ON web_signup_attempts (scope, hash, time);
        CREATE INDEX web_signup_attempts_time ON web_signup_attempts (time);
        """,
    )


@migrations()
def m005_topic_listing(db: Database) -> None:
    # Feed tags create topics; staff decide which of them the public sign-up page offers.
    db.execute("ALTER TABLE topics ADD COLUMN listed INTEGER NOT NULL DEFAULT 1")


@migrations()
def m006_article_language(db: Database) -> None:
    # NULL means "the default language": articles stored before this keep meaning that.
    _script(
        db,
        """
        ALTER TABLE articles ADD COLUMN lang TEXT;
        ALTER TABLE articles ADD COLUMN translation_of TEXT;
        CREATE INDEX articles_translation ON articles (translation_of)
            WHERE translation_of IS NOT NULL;
        """,
    )


@migrations()
def m110_link_keys(db: Database) -> None:
    # Every key that has signed links, newest (the current one) last. Older keys are kept
    # for checking links already mailed, never for signing new ones.
    _script(
        db,
        """
        CREATE TABLE link_keys (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            first_used TEXT NOT NULL
        );
        """,
    )


@migrations()
def m111_signup_requests(db: Database) -> None:
    # A sign-up for a topic the person had left (or while they are opted out) is only a
    # request: it changes no subscription until the person confirms it from their mailbox.
    _script(
        db,
        """
        CREATE TABLE signup_requests (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
            topic_id INTEGER NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
            requested TEXT NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, topic_id)
        );
        """,
    )


@migrations()
def m112_edition_hole_marker(db: Database) -> None:
    # The unguessable marker of an edition's per-recipient holes; NULL for editions built
    # before holes were sealed against content (those are built again before sending).
    db.execute("ALTER TABLE editions ADD COLUMN hole_marker TEXT")


@migrations()
def m170_digest_runs(db: Database) -> None:
    # The editions `newsletter digest` built, so a later run resumes its own unfinished one
    # and never sends a draft that staff are still working on.
    _script(
        db,
        """
        CREATE TABLE digest_editions (
            edition_id INTEGER PRIMARY KEY REFERENCES editions (id) ON DELETE CASCADE,
            topic_id INTEGER NOT NULL REFERENCES topics (id),
            created TEXT NOT NULL
        );
        CREATE INDEX digest_editions_topic ON digest_editions (topic_id, edition_id);
        """,
    )


@migrations()
def m120_import_runs_and_undo_journal(db: Database) -> None:
    # An import is applied in short transactions so opt-outs never wait for it; these
    # tables let a failed or interrupted import be undone. The journal holds what each
    # chunk changed (and the values it replaced) and is emptied when the import ends.
    _script(
        db,
        """
        CREATE TABLE import_runs (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            stamp TEXT NOT NULL,
            first_event_id INTEGER NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'done', 'undone')),
            started TEXT NOT NULL,
            finished TEXT
        );
        CREATE TABLE import_undo (
            id INTEGER PRIMARY KEY,
            import_id INTEGER NOT NULL REFERENCES import_runs (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            subscriber_id INTEGER,
            topic_id INTEGER,
            old TEXT,
            new TEXT
        );
        CREATE INDEX import_undo_run ON import_undo (import_id, id);
        """,
    )


@migrations()
def m130_bounce_reports(db: Database) -> None:
    # Bounces and complaints that arrive after the send (DSNs, ARF reports, provider
    # webhooks). The fingerprint makes a report counted once however often it is read.
    # No address is kept here: the detail is scrubbed, the person is the foreign key.
    _script(
        db,
        """
        CREATE TABLE bounce_reports (
            id INTEGER PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint')),
            subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE SET NULL,
            edition_id INTEGER REFERENCES editions (id) ON DELETE SET NULL,
            source TEXT NOT NULL,
            status TEXT,
            detail TEXT,
            received TEXT NOT NULL
        );
        CREATE INDEX bounce_reports_edition ON bounce_reports (edition_id, kind);
        CREATE INDEX bounce_reports_subscriber ON bounce_reports (subscriber_id);
        -- A report that names only our Message-ID is matched through the delivery log.
        CREATE INDEX deliveries_message_id ON deliveries (message_id)
            WHERE message_id IS NOT NULL;
        """,
    )


@migrations()
def m140_edition_variants(db: Database) -> None:
    # One edition, one rendering per language. The editions row keeps its main variant (the
    # default language) in html/text, so code reading only that row still works.
    _script(
        db,
        """
        CREATE TABLE edition_variants (
            edition_id INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
            lang TEXT NOT NULL CHECK (lang IN ('fi', 'sv', 'en')),
            subject TEXT NOT NULL,
            preheader TEXT NOT NULL DEFAULT '',
            intro TEXT NOT NULL DEFAULT '',
            html TEXT NOT NULL,
            text TEXT NOT NULL,
            article_ids TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (edition_id, lang)
        );
        """,
    )


@migrations()
def m141_topic_names(db: Database) -> None:
    # A topic's name and description in each language; topics.name stays the name it was
    # created with (the fallback for a language without its own).
    _script(
        db,
        """
        CREATE TABLE topic_names (
            topic_id INTEGER NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
            lang TEXT NOT NULL CHECK (lang IN ('fi', 'sv', 'en')),
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (topic_id, lang)
        );
        """,
    )


@migrations()
def m142_delivery_language(db: Database) -> None:
    # The language whose variant a recipient gets, fixed with the delivery log; NULL for rows
    # fixed before variants existed (they get the edition's main variant).
    db.execute("ALTER TABLE deliveries ADD COLUMN lang TEXT")


@migrations()
def m150_topic_contacts(db: Database) -> None:
    # The people an edition names under "Lisätietoja" / "Contact": configured per topic,
    # shown in the order staff added them.
    _script(
        db,
        """
        CREATE TABLE topic_contacts (
            id INTEGER PRIMARY KEY,
            topic_id INTEGER NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            title_en TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            phone TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL
        );
        CREATE INDEX topic_contacts_topic ON topic_contacts (topic_id, position);
        """,
    )


@migrations()
def m151_topic_archive(db: Database) -> None:
    # 1: the topic's sent editions are listed on its public archive page and Atom feed.
    db.execute("ALTER TABLE topics ADD COLUMN archived INTEGER NOT NULL DEFAULT 1")


@migrations()
def m152_edition_web_html(db: Database) -> None:
    # The public web version of an edition: the same design, without personal links.
    db.execute("ALTER TABLE editions ADD COLUMN web_html TEXT")


@migrations()
def m143_variant_web_html(db: Database) -> None:
    # Each language variant's public web version (the editions row keeps the main one's).
    db.execute("ALTER TABLE edition_variants ADD COLUMN web_html TEXT")


@migrations()
def m180_unsubscribed_all_and_running_imports(db: Database) -> None:
    # When the person unsubscribed from everything (NULL: never, or they came back by their
    # own confirmed action): it covers topics created later too. The index lets the
    # recipient query skip what a still-running import journalled without a scan.
    _script(
        db,
        """
        ALTER TABLE subscribers ADD COLUMN unsubscribed_all TEXT;
        CREATE INDEX import_undo_subscription ON import_undo (subscriber_id, topic_id);
        """,
    )
