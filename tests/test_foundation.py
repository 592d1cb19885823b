"""Config, database, migrations, topics and the CLI conventions."""

from __future__ import annotations

import importlib.metadata
import json
import multiprocessing
import re
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer
from typer.testing import CliRunner

from newsletter import dates, links, tokens
from newsletter.audience import subscribers
from newsletter.config import CONFIG_TEMPLATE, KEYS, Settings, load_settings, write_template
from newsletter.content import articles, topics
from newsletter.errors import ConfigError, InvalidToken, NewsletterError, NotFound
from newsletter.store import db as db_module
from newsletter.store.db import open_db
from newsletter.store.migrations import migrations

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
    assert listed == [
        {"slug": "vaikuttavuus", "name": "Vaikuttavuus", "names": {}, "descriptions": {},
         "listed": True, "subscribers": 0}
    ]  # fmt: skip
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
    assert [(r["slug"], r["name"], r["subscribers"]) for r in listed] == [
        ("nuoret", "Nuoret", 0),
        ("vaikuttavuus", "Vaikuttavuus", 1),
    ]
    lines = cli.ok("topics", "list").stdout.splitlines()
    assert lines[0].split() == [
        "topic",
        "name",
        "recipients",
        "sign-up",
        "page",
        "other",
        "languages",
    ]
    assert lines[2].split() == ["vaikuttavuus", "Vaikuttavuus", "1", "shown"]


def test_usage_error_exits_2(cli) -> None:
    assert cli("topics", "list", "--no-such-option").exit_code == 2


def test_tokens_round_trip_and_reject_tampering() -> None:
    key = b"k" * 32
    token = tokens.make(key, "unsub", 42, 7)
    assert tokens.check(key, "unsub", token, count=2).values == (42, 7)
    with pytest.raises(InvalidToken):
        tokens.check(key, "prefs", token, count=2)  # scoped to its purpose
    with pytest.raises(InvalidToken):
        tokens.check(b"x" * 32, "unsub", token, count=2)
    with pytest.raises(InvalidToken):
        tokens.check(key, "unsub", token, count=1)  # of another shape
    body, mac = token.split(".")
    with pytest.raises(InvalidToken):
        tokens.check(key, "unsub", body.replace("16", "17") + "." + mac, count=2)
    with pytest.raises(InvalidToken):
        tokens.check(key, "unsub", "garbage", count=2)
    expiring = tokens.make(key, "confirm", 1, expires_at=1000)
    assert tokens.check(key, "confirm", expiring, count=1, expires=True, now=999).expires_at == 1000
    with pytest.raises(InvalidToken, match="expired"):
        tokens.check(key, "confirm", expiring, count=1, expires=True, now=1001)


# --- configuration -------------------------------------------------------------------------

SAMPLE_VALUES = {
    "timezone": "Europe/Stockholm",
    "default_lang": "sv",
    "base_url": "https://news.example.org",
    "smtp_security": "ssl",
    "from_addr": "Itla <news@itla.example>",
    "new_topics": "listed",
    "bounce_address": "bounces@itla.example",
}


def sample_value(attr: str, kind: str, tmp_path: Path) -> tuple[object, object]:
    """A valid raw value for a setting and what it loads as."""
    if attr == "digest_feeds":
        return {"vaikuttavuus": ["https://a.example/feed"]}, (
            ("vaikuttavuus", ("https://a.example/feed",)),
        )
    if attr in SAMPLE_VALUES:
        return SAMPLE_VALUES[attr], SAMPLE_VALUES[attr]
    if "Path" in kind:
        return str(tmp_path / attr), tmp_path / attr
    if kind == "bool":
        return True, True
    if kind == "int":
        return 11, 11
    if kind == "float":
        return 2.5, 2.5
    if "tuple" in kind:
        return ["Blog", "Juttu"], ("Blog", "Juttu")
    return f"value of {attr}", f"value of {attr}"


def toml_text(values: dict[str, object]) -> str:
    """Dotted keys to TOML: top-level keys first, then one [section] each."""
    sections: dict[str, list[str]] = {}
    for dotted, value in values.items():
        section, _, name = dotted.rpartition(".")
        if isinstance(value, dict):  # an inline table: { key = value, ... }
            text = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
        else:
            text = json.dumps(value)
        sections.setdefault(section, []).append(f"{name} = {text}")
    lines = sections.pop("", [])
    for section, rows in sections.items():
        lines += [f"[{section}]", *rows]
    return "\n".join(lines) + "\n"


def test_every_setting_has_one_file_key_and_one_variable() -> None:
    attrs = [f.name for f in fields(Settings)]
    assert sorted(key.attr for key in KEYS) == sorted(attrs)
    envs = [key.env for key in KEYS]
    assert len(set(envs)) == len(envs)
    assert all(env.startswith("NEWSLETTER_") for env in envs)
    assert len({key.toml for key in KEYS}) == len(KEYS)


def test_every_setting_is_read_from_the_file_and_overridden_by_its_variable(
    tmp_path: Path,
) -> None:
    kinds = {f.name: str(f.type) for f in fields(Settings)}
    in_file = {key.toml: sample_value(key.attr, kinds[key.attr], tmp_path)[0] for key in KEYS}
    path = tmp_path / "all.toml"
    path.write_text(toml_text(in_file), encoding="utf-8")
    from_file = load_settings(path, env={})
    for key in KEYS:
        expected = sample_value(key.attr, kinds[key.attr], tmp_path)[1]
        assert getattr(from_file, key.attr) == expected, key.toml
        assert getattr(from_file, key.attr) != getattr(Settings(), key.attr), key.toml

    env_dir = tmp_path / "env"
    env = {}
    expected_env = {}
    for key in KEYS:
        kind = kinds[key.attr]
        if key.attr in SAMPLE_VALUES:
            raw, loaded = {
                "timezone": ("UTC", "UTC"),
                "default_lang": ("en", "en"),
                "base_url": ("http://127.0.0.1:9", "http://127.0.0.1:9"),
                "smtp_security": ("starttls", "starttls"),
                "from_addr": ("a@b.example", "a@b.example"),
                "new_topics": ("listed", "listed"),
                "bounce_address": ("bounces@b.example", "bounces@b.example"),
            }[key.attr]
        elif key.attr == "digest_feeds":
            raw, loaded = (
                "nuoret=https://b.example/a https://b.example/b",
                (("nuoret", ("https://b.example/a", "https://b.example/b")),),
            )
        elif "Path" in kind:
            raw, loaded = str(env_dir / key.attr), env_dir / key.attr
        elif kind == "bool":
            raw, loaded = "yes", True
        elif kind == "int":
            raw, loaded = "9", 9
        elif kind == "float":
            raw, loaded = "0.5", 0.5
        elif "tuple" in kind:
            raw, loaded = "Uutiset, Nyheter", ("Uutiset", "Nyheter")
        else:
            raw, loaded = f"env {key.attr}", f"env {key.attr}"
        env[key.env] = raw
        expected_env[key.attr] = loaded
    overridden = load_settings(path, env=env)
    for key in KEYS:
        assert getattr(overridden, key.attr) == expected_env[key.attr], key.env
    # An empty variable is no override.
    blank = load_settings(path, env={"NEWSLETTER_SMTP_HOST": ""})
    assert blank.smtp_host == "value of smtp_host"


def test_template_documents_every_key_and_variable_and_loads(tmp_path: Path) -> None:
    for key in KEYS:
        name = key.toml.rpartition(".")[2]
        assert f"{name} =" in CONFIG_TEMPLATE, key.toml
        assert key.env in CONFIG_TEMPLATE, key.env
    path = tmp_path / "newsletter.toml"
    write_template(path)
    loaded = load_settings(path, env={})
    assert loaded.org_name == "Esimerkkisäätiö"
    assert loaded.db == tmp_path / "subscribers.db"
    # Uncommenting every commented key still gives a valid file.
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = )", r"\1", CONFIG_TEMPLATE)
    assert uncommented.count("\n# ") < CONFIG_TEMPLATE.count("\n# ")
    path.write_text(uncommented, encoding="utf-8")
    assert load_settings(path, env={}).dkim_selector == "news"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[smtp]\nhots = "mail.example.fi"\n', r"bad.toml: unknown setting 'smtp.hots'"),
        ("[sned]\nrate = 5\n", r"unknown setting 'sned'"),
        ('organisation = "Itla"\n', r"organisation must be a section"),
        ('[mail.from]\nname = "x"\n', r"bad.toml: mail.from: expected text"),
        ("[send]\nrate = nan\n", r"send.rate: expected a number, got nan"),
        ("[send]\nrate = inf\n", r"send.rate: expected a number"),
        ("[send]\nrate = true\n", r"send.rate: expected a number, got True"),
        ("[send]\nbatch_size = 2.5\n", r"send.batch_size: expected a whole number"),
        ("[send]\nbatch_size = 0\n", r"bad.toml: send.batch_size: must be at least 1"),
        ("[send]\nmax_retries = 0\n", r"send.max_retries: must be at least 1"),
        ("[send]\nretry_base = -1\n", r"send.retry_base: must be at least 0"),
        ("[smtp]\nport = 70000\n", r"smtp.port: must be at most 65535"),
        ("[smtp]\ntimeout = 0\n", r"smtp.timeout: must be above 0"),
        ("[web]\nconfirm_days = 0\n", r"web.confirm_days: must be at least 1"),
        ('timezone = "Europe/Hesinki"\n', r"bad.toml: timezone: unknown time zone"),
        ('base_url = "uutiskirje.example.fi"\n', r"base_url: must start with https://"),
        ("article_types = [1, 2]\n", r"article_types: expected a list of names"),
        ('[mail]\nfrom = "nobody"\n', r"bad.toml: mail.from: not an address"),
    ],
)
def test_invalid_values_name_their_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path, env={})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEWSLETTER_DEFAULT_LANG": "de"}, r"^NEWSLETTER_DEFAULT_LANG: must be one of fi"),
        ({"NEWSLETTER_SMTP_PORT": "0"}, r"^NEWSLETTER_SMTP_PORT: must be at least 1"),
        ({"NEWSLETTER_RATE": "fast"}, r"^NEWSLETTER_RATE: expected a number, got 'fast'"),
        ({"NEWSLETTER_SMTP_SECURITY": "tls"}, r"^NEWSLETTER_SMTP_SECURITY: must be one of"),
    ],
)
def test_invalid_variables_are_named(tmp_path: Path, env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path / "absent.toml", env=env)


def test_a_secret_is_never_shown_not_even_in_an_error(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[smtp]\npassword = ["hunter2"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"smtp\.password: expected text") as caught:
        load_settings(path, env={})
    assert "hunter2" not in str(caught.value)
    settings = load_settings(tmp_path / "absent.toml", env={"NEWSLETTER_SECRET": "s3cret-key"})
    assert settings.secret == "s3cret-key"
    assert "s3cret-key" not in repr(settings)


def test_no_command_takes_a_secret_from_the_command_line() -> None:
    names = [
        name for _, command in command_tree() for param in command.params for name in param.opts
    ]
    assert "--db" in names  # the walk reaches the options
    assert not [n for n in names if re.search("pass|secret|token|key", n, re.IGNORECASE)]


def test_secrets_from_the_environment_are_never_printed(cli, workdir: Path) -> None:
    secrets_env = {
        "NEWSLETTER_SMTP_PASSWORD": "pw-hunter2",
        "NEWSLETTER_SECRET": "secret-xyzzy",
    }
    outputs = [
        cli("topics", "list", env=secrets_env),
        cli("subscribers", "list", "--json", env=secrets_env),
        cli("topics", "list", env={**secrets_env, "NEWSLETTER_SMTP_PORT": "many"}),
    ]
    assert outputs[2].exit_code == 1
    for result in outputs:
        assert "pw-hunter2" not in result.stdout + result.stderr
        assert "secret-xyzzy" not in result.stdout + result.stderr


def test_config_file_from_the_environment_or_option(cli, workdir: Path) -> None:
    other = workdir / "elsewhere"
    other.mkdir()
    (other / "n.toml").write_text('database = "other.db"\n', encoding="utf-8")
    from newsletter.cli import app

    runner = CliRunner()
    made = runner.invoke(
        app,
        ["topics", "add", "nuoret", "--name", "Nuoret"],
        env={"NEWSLETTER_CONFIG": str(other / "n.toml")},
    )
    assert made.exit_code == 0, made.stderr
    # The file's relative database path resolves against the file's folder.
    assert (other / "other.db").exists()
    assert not (workdir / "subscribers.db").exists()
    # --config wins over the variable.
    listed = runner.invoke(
        app,
        ["--config", str(workdir / "newsletter.toml"), "topics", "list", "--json"],
        env={"NEWSLETTER_CONFIG": str(other / "n.toml")},
    )
    assert json.loads(listed.stdout) == []


def test_a_missing_config_file_on_the_command_line_means_defaults(workdir: Path) -> None:
    from newsletter.cli import app

    result = CliRunner().invoke(app, ["--config", "absent.toml", "topics", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert (workdir / "subscribers.db").exists()


def test_init_never_overwrites(cli, workdir: Path) -> None:
    before = (workdir / "newsletter.toml").read_text(encoding="utf-8")
    result = cli.ok("init")
    assert "left as it is" in result.stdout
    assert (workdir / "newsletter.toml").read_text(encoding="utf-8") == before
    with pytest.raises(ConfigError, match="already exists"):
        write_template(workdir / "newsletter.toml")
    assert (workdir / "newsletter.toml").read_text(encoding="utf-8") == before


def test_init_in_a_new_folder_puts_the_database_beside_the_file(workdir: Path) -> None:
    from newsletter.cli import app

    target = workdir / "site" / "newsletter.toml"
    result = CliRunner().invoke(app, ["--config", str(target), "init"])
    assert result.exit_code == 0, result.stderr
    assert target.exists()
    assert (workdir / "site" / "subscribers.db").exists()
    assert not (workdir / "subscribers.db").exists()


def test_init_where_it_cannot_write_is_one_line(workdir: Path) -> None:
    from newsletter.cli import app

    (workdir / "afile").write_text("x", encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", "afile/newsletter.toml", "init"])
    assert result.exit_code == 1
    assert result.stderr == "error: afile/newsletter.toml: cannot write: afile is not a folder\n"


# --- database --------------------------------------------------------------------------------


def test_every_connection_gets_its_pragmas(tmp_path: Path) -> None:
    db = open_db(tmp_path / "p.db")
    pragma = {
        name: db.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "foreign_keys", "secure_delete", "busy_timeout", "synchronous")
    }
    assert pragma == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "secure_delete": 1,
        "busy_timeout": int(db_module.BUSY_TIMEOUT * 1000),
        "synchronous": 1,  # NORMAL
    }
    db.close()


def test_reopening_changes_nothing(tmp_path: Path) -> None:
    open_db(tmp_path / "r.db").close()
    first = sqlite3.connect(tmp_path / "r.db")
    schema = first.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    applied = first.execute("SELECT name, applied_at FROM _sqlite_migrations").fetchall()
    first.close()
    open_db(tmp_path / "r.db").close()
    again = sqlite3.connect(tmp_path / "r.db")
    assert again.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
    assert again.execute("SELECT name, applied_at FROM _sqlite_migrations").fetchall() == applied
    again.close()


def _open_and_close(path: str) -> str:
    try:
        open_db(path).close()
        return "ok"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def test_threads_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL used to fail with "database is locked" under contention.
    for round_ in range(15):
        path = str(tmp_path / f"t{round_}.db")
        barrier = threading.Barrier(8)

        def opener(path: str = path, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            return _open_and_close(path)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: opener(), range(8)))
        assert results == ["ok"] * 8, results


def _opener_process(path: str, barrier, results) -> None:
    barrier.wait()
    results.put(_open_and_close(path))


def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    # Two processes used to run the same migrations: "table meta already exists".
    context = multiprocessing.get_context("fork")
    for round_ in range(6):
        path = str(tmp_path / f"p{round_}.db")
        barrier, results = context.Barrier(6), context.Queue()
        workers = [
            context.Process(target=_opener_process, args=(path, barrier, results)) for _ in range(6)
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert outcomes == ["ok"] * 6, outcomes
        db = open_db(path)
        assert not migrations.pending(db)
        db.close()


def test_unusable_database_paths_are_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    with pytest.raises(NewsletterError, match="afile is not a folder"):
        open_db(tmp_path / "afile" / "x.db")
    (tmp_path / "junk.db").write_bytes(b"not a database " * 100)
    with pytest.raises(NewsletterError, match=r"junk\.db: cannot open database: file is not a"):
        open_db(tmp_path / "junk.db")
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(NewsletterError, match=r"folder\.db: cannot open database"):
        open_db(tmp_path / "folder.db")


def one_line_error(result, *, contains: str) -> None:
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert contains in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_database_that_is_not_one_is_one_line(cli, workdir: Path) -> None:
    (workdir / "junk.db").write_bytes(b"not a database " * 100)
    one_line_error(cli("--db", "junk.db", "topics", "list"), contains="file is not a database")
    (workdir / "afile").write_text("x", encoding="utf-8")
    one_line_error(cli("--db", "afile/x.db", "topics", "list"), contains="afile is not a folder")


def test_a_damaged_database_mid_command_is_one_line(cli, workdir: Path, db) -> None:
    for n in range(5):
        topics.add_topic(db, f"aihe-{n}", f"Aihe {n}")
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'topics'").fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()  # the last connection folds the WAL back into the file
    with (workdir / "subscribers.db").open("r+b") as fh:
        fh.seek((root - 1) * page)
        fh.write(b"\xff" * page)
    one_line_error(cli("topics", "list"), contains="database disk image is malformed")


def test_a_locked_database_is_one_line(
    cli, workdir: Path, db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT", 0.2)  # fail fast instead of waiting 30 s
    db.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        result = cli("topics", "add", "nuoret", "--name", "Nuoret")
    finally:
        db.conn.rollback()
    one_line_error(result, contains="subscribers.db: database is locked")
    assert cli.ok("topics", "add", "nuoret", "--name", "Nuoret")


def test_an_unwritable_output_path_is_one_line(cli, workdir: Path) -> None:
    # The root turns any OS error a command lets through into one line, not a traceback.
    (workdir / "afile").write_text("x", encoding="utf-8")
    result = cli("subscribers", "export", "--output", "afile/people.csv")
    one_line_error(result, contains="Not a directory")


# --- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "1-2",
        "1-2.",
        ".abc",
        "1-2.ä",
        "ä.ä",
        "1." + "é" * 16,
        "1.\udc80",
        "\x00.\x00",
        "1-2." + "A" * 16,
        "1-2." + "A" * 300,
        "x.abc",
        "1--2.abc",
        None,
        b"1-2.abc",
    ],
)
def test_malformed_tokens_only_ever_raise_invalid_token(token) -> None:
    with pytest.raises(InvalidToken):
        tokens.check(b"k" * 32, "unsub", token, count=2)


def test_tokens_are_short_enough_for_header_lines() -> None:
    key = b"k" * 32
    biggest = 2**31 - 1
    token = tokens.make(key, "unsub", biggest, biggest, expires_at=4_102_444_800)  # 2100
    assert tokens.check(key, "unsub", token, count=2, expires=True).values == (biggest, biggest)
    assert len(token) <= 48
    settings = Settings(base_url="https://uutiskirje.example.fi")
    url = links.unsubscribe_url(settings, key, biggest, biggest)
    mailto = links.unsubscribe_mailto(settings, key, biggest, biggest)
    # List-Unsubscribe is kept on one line: it must fit the 78-character advice with room.
    assert len(f"List-Unsubscribe: <{mailto}>, <{url}>") < 998
    assert len(url) < 78


def test_a_token_made_with_the_stored_key_checks_after_reopening(tmp_path: Path) -> None:
    db = open_db(tmp_path / "k.db")
    key = db_module.token_key(db, "")
    db.close()
    again = open_db(tmp_path / "k.db")
    assert db_module.token_key(again, "") == key
    assert db_module.token_key(again, "from-env") != key
    token = tokens.make(key, "prefs", 5)
    assert links.read_preferences(db_module.token_key(again, ""), token) == 5
    again.close()


# --- dates -------------------------------------------------------------------------------------

HELSINKI = ZoneInfo("Europe/Helsinki")

DST_ARTICLES = {
    # spring forward: 2025-03-30 in Helsinki is 23 hours long, 22:00Z to 21:00Z
    "before-spring": "2025-03-29T21:59:59+00:00",
    "spring-first": "2025-03-29T22:00:00+00:00",
    "spring-last": "2025-03-30T20:59:59+00:00",
    "after-spring": "2025-03-30T21:00:00+00:00",
    # fall back: 2025-10-26 is 25 hours long, 21:00Z to 22:00Z the next day
    "before-autumn": "2025-10-25T20:59:59+00:00",
    "autumn-first": "2025-10-25T21:00:00+00:00",
    "autumn-last": "2025-10-26T21:59:59+00:00",
    "after-autumn": "2025-10-26T22:00:00+00:00",
}


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2025-03-30", ["spring-last", "spring-first"]),
        ("2025-10-26", ["autumn-last", "autumn-first"]),
    ],
)
def test_a_day_is_the_whole_helsinki_day_across_dst(cli, db, day: str, expected) -> None:
    with db.atomic():
        for slug, moment in DST_ARTICLES.items():
            articles.upsert(
                db,
                articles.ArticleIn(
                    url=f"https://www.example.fi/{slug}",
                    title=slug,
                    published=datetime.fromisoformat(moment),
                ),
            )
    rows = json.loads(cli.ok("articles", "list", "--since", day, "--until", day, "--json").stdout)
    assert [row["title"] for row in rows] == expected


def test_relative_dates_count_calendar_days_across_dst() -> None:
    today = datetime(2025, 4, 2, 9, 0, tzinfo=HELSINKI)  # summer time (+03:00)
    week_ago = dates.start_of("1w", HELSINKI, today=today)
    assert week_ago == datetime(2025, 3, 26, 9, 0, tzinfo=HELSINKI)
    assert week_ago.utcoffset() == timedelta(hours=2)  # winter time
    assert dates.start_of("10D", HELSINKI, today=today) == today - timedelta(days=10)
    assert dates.start_of("0d", HELSINKI, today=today) == today
    # Aware datetimes in one zone subtract as wall clocks; timestamps give the real length.
    start, end = dates.start_of("2025-03-30", HELSINKI), dates.end_of("2025-03-30", HELSINKI)
    assert end.timestamp() - start.timestamp() == 23 * 3600


@pytest.mark.parametrize(
    "text",
    ["20250801", "2025-W31-1", "2025-02-30", "30.2.2025", "1.8.25", "14", "14x", "-3d", "٣d", ""],
)
def test_dates_outside_the_documented_forms_are_refused(text: str) -> None:
    with pytest.raises(NewsletterError, match=r"use YYYY-MM-DD, DD\.MM\.YYYY, Nd or Nw"):
        dates.start_of(text, HELSINKI)


def test_finnish_dates_are_accepted_as_the_tool_prints_them() -> None:
    assert dates.start_of("15.08.2025", HELSINKI) == dates.start_of("2025-08-15", HELSINKI)
    assert dates.start_of("1.8.2025", HELSINKI) == dates.start_of("2025-08-01", HELSINKI)
    assert dates.end_of("31.12.2025", HELSINKI) == dates.start_of("2026-01-01", HELSINKI)
    with pytest.raises(NewsletterError, match="a day, not Nd"):
        dates.end_of("7d", HELSINKI)
    august = datetime(2025, 8, 15, 12, 0, tzinfo=HELSINKI)
    assert dates.format_date(august, "en", HELSINKI) == "15 Aug 2025"


@pytest.mark.parametrize(
    ("option", "text"),
    [("--since", "0001-01-01"), ("--until", "9999-12-31"), ("--since", "99999999999d")],
)
def test_dates_out_of_range_are_one_line(cli, option: str, text: str) -> None:
    one_line_error(cli("articles", "list", option, text), contains="date out of range")


# --- command line ------------------------------------------------------------------------------


def command_tree():
    """(path, command) for the root and every group and command under it."""
    from newsletter.cli import app

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    root = typer.main.get_command(app)
    root.load_all()  # command modules load lazily; the tree is complete once all are in
    return list(walk(root, []))


def test_every_command_help_has_an_example(cli) -> None:
    tree = command_tree()
    assert len([c for _, c in tree if not getattr(c, "commands", None)]) > 10
    for path, _ in tree:  # the root, every group and every command
        result = cli.ok(*path, "--help")
        assert "Example:" in result.stdout, f"newsletter {' '.join(path)} --help"
        assert "Usage:" in result.stdout


def test_version(cli) -> None:
    from newsletter import __version__

    result = cli.ok("--version")
    assert result.stdout == f"newsletter {__version__}\n"
    # The number is written twice (pyproject.toml and the package): they must agree.
    assert importlib.metadata.version("newsletter") == __version__


@pytest.mark.parametrize(
    "args",
    [
        ["send", "three"],
        ["send", "1", "--rate", "fast"],
        ["editions", "show", "x"],
        ["topics", "add"],
        ["no-such-command"],
        ["topics", "list", "--json=maybe"],
    ],
)
def test_usage_errors_exit_2(cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_python_m_newsletter_runs_the_cli(workdir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("newsletter ")


def test_a_mistyped_config_or_db_path_is_warned_about(cli, workdir: Path) -> None:
    fresh = cli.ok("--db", "typo.db", "topics", "list")
    assert "typo.db does not exist: creating a new, empty database" in fresh.stderr
    again = cli.ok("--db", "typo.db", "topics", "list")
    assert "does not exist" not in again.stderr
    from newsletter.cli import app

    defaults = CliRunner().invoke(app, ["--config", "absent.toml", "topics", "list"])
    assert defaults.exit_code == 0
    assert "absent.toml does not exist: using the default settings" in defaults.stderr
    made = CliRunner().invoke(app, ["--config", "new.toml", "init"])
    assert made.exit_code == 0 and "does not exist" not in made.stderr


def test_example_values_written_by_init_are_recognised(tmp_path: Path) -> None:
    from newsletter.config import example_values_in_use

    path = tmp_path / "newsletter.toml"
    write_template(path)
    written = load_settings(path, env={})
    assert set(example_values_in_use(written)) == {
        "organisation.name",
        "organisation.address",
        "organisation.website",
        "organisation.email",
        "mail.from",
        "mail.reply_to",
        "base_url",
    }
    own = load_settings(path, env={"NEWSLETTER_ORG_NAME": "Lastensuojelun Keskusliitto"})
    assert "organisation.name" not in example_values_in_use(own)
    assert example_values_in_use(Settings()) == []
