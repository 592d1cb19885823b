"""Config, database, migrations, topics and the CLI conventions."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from newsletter import subscribers, tokens, topics
from newsletter.config import load_settings
from newsletter.db import open_db
from newsletter.errors import ConfigError, InvalidToken, NotFound
from newsletter.migrations import migrations

EXPECTED_TABLES = {
    "meta",
    "topics",
    "articles",
    "article_topics",
    "subscribers",
    "subscriptions",
    "events",
    "suppressions",
    "editions",
    "edition_topics",
    "edition_articles",
    "deliveries",
}


def test_blank_database_is_migrated_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = open_db(tmp_path / "new.db")
    assert set(db.table_names()) >= EXPECTED_TABLES
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert not migrations.pending(db)
    db.close()
    # Reopening applies nothing twice.
    again = open_db(tmp_path / "new.db")
    applied = [m.name for m in migrations.applied(again)]
    assert len(applied) == len(set(applied)) == len(migrations._migrations)


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    db = open_db(tmp_path / "fk.db")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO article_topics (article_id, topic_id) VALUES (99, 99)")


def test_missing_config_means_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.toml", env={})
    assert settings.db == Path("subscribers.db")
    assert settings.default_lang == "fi"
    assert settings.timezone == "Europe/Helsinki"


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[smtp]\nhost = "mail.example.fi"\nport = 587\n', encoding="utf-8")
    env = {
        "NEWSLETTER_SMTP_PORT": "2525",
        "NEWSLETTER_SMTP_PASSWORD": "hunter2",
        "NEWSLETTER_FROM": "Itla <news@itla.example>",
        "NEWSLETTER_DB": str(tmp_path / "other.db"),
    }
    settings = load_settings(path, env=env)
    assert settings.smtp_host == "mail.example.fi"
    assert settings.smtp_port == 2525
    assert settings.sender_domain == "itla.example"
    assert settings.db == tmp_path / "other.db"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[smtp]\nsecurity = "tls13"\n', "smtp.security"),
        ('[smtp]\nport = "many"\n', "smtp.port"),
        ('default_lang = "de"\n', "default_lang"),
        ("x = [\n", "invalid TOML"),
    ],
)
def test_invalid_config_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})


def test_init_writes_a_loadable_commented_config(cli, workdir: Path) -> None:
    (workdir / "newsletter.toml").unlink()
    result = cli.ok("init")
    assert "wrote" in result.stdout
    text = (workdir / "newsletter.toml").read_text(encoding="utf-8")
    assert "NEWSLETTER_SMTP_PASSWORD" in text
    assert load_settings(workdir / "newsletter.toml", env={}).smtp_security == "none"
    assert (workdir / "subscribers.db").exists()


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Yhteisövaikuttavuus", "yhteisovaikuttavuus"),
        ("YOUNG-ohjelma", "young-ohjelma"),
        ("Right to Belong", "right-to-belong"),
        ("  Tulevaisuususko ", "tulevaisuususko"),
        ("Åland & Ärende", "aland-arende"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert topics.slugify(name) == slug


def test_topics_differing_in_case_or_diacritics_are_one(db) -> None:
    first = topics.ensure_topic(db, "Yhteisövaikuttavuus")
    assert topics.ensure_topic(db, "YHTEISOVAIKUTTAVUUS").id == first.id
    assert topics.resolve(db, "yhteisövaikuttavuus").id == first.id
    with pytest.raises(NotFound, match="unknown topic"):
        topics.resolve(db, "Nonexistent")


def test_a_topic_answers_to_its_name_when_the_slug_differs(cli, db) -> None:
    impact = topics.add_topic(db, "impact", "Vaikuttavuus ja arviointi")
    assert topics.resolve(db, "VAIKUTTAVUUS JA ARVIOINTI").id == impact.id
    assert topics.resolve(db, "Impact").id == impact.id
    # A tag spelled as the name joins the topic instead of creating a second one.
    assert topics.ensure_topic(db, "vaikuttavuus ja arviointi").id == impact.id
    assert [t.slug for t in topics.all_topics(db)] == ["impact"]
    # The slug wins when another topic's name would also match.
    other = topics.add_topic(db, "arviointi", "Impact")
    assert topics.resolve(db, "impact").id == impact.id
    assert topics.resolve(db, "arviointi").id == other.id
    cli.ok("subscribers", "add", "a@example.fi", "--topic", "Vaikuttavuus ja Arviointi")
    listed = json.loads(cli.ok("topics", "list", "--json").stdout)
    assert {row["slug"]: row["subscribers"] for row in listed} == {"arviointi": 0, "impact": 0}
    rows = json.loads(cli.ok("subscribers", "list", "--json").stdout)
    assert rows[0]["subscriptions"] == {"impact": "unconfirmed"}


def test_topics_cli(cli) -> None:
    cli.ok("topics", "add", "vaikuttavuus", "--name", "Vaikuttavuus")
    listed = json.loads(cli.ok("topics", "list", "--json").stdout)
    assert listed == [{"slug": "vaikuttavuus", "name": "Vaikuttavuus", "subscribers": 0}]
    bad = cli("topics", "add", "Not A Slug", "--name", "x")
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: invalid slug")
    assert "Traceback" not in bad.stderr


def test_topics_list_counts_only_confirmed_active_recipients(cli, db) -> None:
    tid = topics.add_topic(db, "vaikuttavuus", "Vaikuttavuus").id
    topics.add_topic(db, "nuoret", "Nuoret")
    subscribers.add(db, "vahvistettu@example.fi", topic_ids=[tid])
    subscribers.add(db, "odottaa@example.fi", topic_ids=[tid], status="unconfirmed")
    left = subscribers.add(db, "lahti@example.fi", topic_ids=[tid]).subscriber_id
    subscribers.unsubscribe(db, left, tid, "web")
    bounced = subscribers.add(db, "pomppi@example.fi", topic_ids=[tid]).subscriber_id
    subscribers.set_status(db, bounced, "bounced", "bounce")
    listed = json.loads(cli.ok("topics", "list", "--json").stdout)
    assert listed == [
        {"slug": "nuoret", "name": "Nuoret", "subscribers": 0},
        {"slug": "vaikuttavuus", "name": "Vaikuttavuus", "subscribers": 1},
    ]
    lines = cli.ok("topics", "list").stdout.splitlines()
    assert lines[1].split() == ["vaikuttavuus", "1", "Vaikuttavuus"]


def test_usage_error_exits_2(cli) -> None:
    assert cli("topics", "list", "--no-such-option").exit_code == 2


def test_tokens_round_trip_and_reject_tampering() -> None:
    key = b"k" * 32
    token = tokens.make(key, "unsub", 42, 7)
    assert tokens.check(key, "unsub", token).values == (42, 7)
    with pytest.raises(InvalidToken):
        tokens.check(key, "prefs", token)  # scoped to its purpose
    with pytest.raises(InvalidToken):
        tokens.check(b"x" * 32, "unsub", token)
    body, mac = token.split(".")
    with pytest.raises(InvalidToken):
        tokens.check(key, "unsub", body.replace("16", "17") + "." + mac)
    with pytest.raises(InvalidToken):
        tokens.check(key, "unsub", "garbage")
    expiring = tokens.make(key, "confirm", 1, expires_at=1000)
    assert tokens.check(key, "confirm", expiring, now=999).expires_at == 1000
    with pytest.raises(InvalidToken, match="expired"):
        tokens.check(key, "confirm", expiring, now=1001)
