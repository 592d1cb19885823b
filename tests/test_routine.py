"""The weekly routine's command line: tables, time zone, --limit, streamed JSON, help, quick
start, `newsletter config`, `init`'s next steps, the send prompt, preview --open, the access
log of `serve`."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import unicodedata
import webbrowser
from pathlib import Path

import pexpect
import pytest
import typer
from conftest import OWN_IDENTITY, ROOT, TEST_CONFIG
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from send_helpers import SUBJECT, add_people, make_edition, make_topic
from web_helpers import Client, LiveServer, web_settings

from newsletter import links
from newsletter.audience import subscribers
from newsletter.cli.output import TABLE_BLOCK, print_json_rows
from newsletter.content import topics
from newsletter.store.db import token_key

# --- tables, time zone, --limit, JSON ----------------------------------------------------------


def test_editions_list_has_headers_and_local_times(cli, db) -> None:
    tid = make_topic(db)
    make_edition(db, [tid])
    db.execute("UPDATE editions SET created = '2026-01-15T22:30:00+00:00'")
    db.conn.commit()
    lines = cli.ok("editions", "list").stdout.splitlines()
    assert lines[0].split()[:4] == ["edition", "status", "created", "(Europe/Helsinki)"]
    assert "2026-01-16 00:30" in lines[1]  # Helsinki is UTC+2 in January
    utc = cli.ok("editions", "list", env={"NEWSLETTER_TIMEZONE": "UTC"}).stdout
    assert "created (UTC)" in utc and "2026-01-15 22:30" in utc
    shown = cli.ok("editions", "show", "1").stdout
    assert "created:   2026-01-16 00:30 (Europe/Helsinki)" in shown
    # Scripts keep the stored UTC value.
    assert json.loads(cli.ok("editions", "list", "--json").stdout)[0]["created"].startswith(
        "2026-01-15T22:30"
    )


def test_subscribers_list_limit_and_json_shape(cli, db) -> None:
    tid = make_topic(db)
    emails = add_people(db, tid, 5)
    rows = json.loads(cli.ok("subscribers", "list", "--json", "--limit", "2").stdout)
    assert [r["email"] for r in rows] == emails[:2]
    assert set(rows[0]) == {"email", "name", "lang", "status", "created", "subscriptions"}
    text = cli.ok("subscribers", "list", "--limit", "3").stdout.splitlines()
    assert text[0].split()[:4] == ["email", "name", "lang", "status"]
    assert len(text) == 4
    assert cli("subscribers", "list", "--limit", "0").exit_code == 2
    for command in (["topics", "list"], ["editions", "list"], ["articles", "list"]):
        assert cli.ok(*command, "--limit", "1").exit_code == 0
    assert json.loads(cli.ok("subscribers", "list", "--json", "--status", "bounced").stdout) == []


def test_streamed_json_is_what_json_dumps_writes(capsys) -> None:
    rows = [{"a": 1, "b": ["x", {"c": "ä"}]}, {"a": 2, "b": []}, {}]
    for sample in (rows, rows[:1], []):
        print_json_rows(iter(sample))
        written = capsys.readouterr().out
        assert written == json.dumps(sample, ensure_ascii=False, indent=2) + "\n"


def test_a_long_table_comes_in_blocks_with_headers(cli, db) -> None:
    tid = make_topic(db)
    count = TABLE_BLOCK + 5
    with db.atomic():
        for number in range(count):
            subscribers.add(db, f"p{number:05d}@example.org", topic_ids=[tid], status="confirmed")
    lines = cli.ok("subscribers", "list").stdout.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("email ")]
    assert headers == [0, TABLE_BLOCK + 1]
    assert len(lines) == count + 2


def test_table_cells_are_text_not_markup(cli, db) -> None:
    topics.add_topic(db, "markup", "[bold red]Nuoret[/] [link=https://x.example]")
    out = cli.ok("topics", "list").stdout
    assert "[bold red]Nuoret[/] [link=https://x.example]" in out


def test_topics_list_explains_its_number(cli, db) -> None:
    make_topic(db)
    out = cli.ok("topics", "list").stdout
    assert "recipients: confirmed subscribers who would be mailed" in out


def test_failed_list_has_headers(cli, db) -> None:
    tid = make_topic(db)
    add_people(db, tid, 1)
    edition = make_edition(db, [tid])
    assert "no failed recipients" in cli.ok("status", str(edition), "--failed").stdout
    assert json.loads(cli.ok("status", str(edition), "--failed", "--json").stdout) == []


# --- help, version, start-up ---------------------------------------------------------------------


def test_help_shows_no_bool_metavars(cli) -> None:
    from test_foundation import command_tree

    for path, _ in command_tree():
        text = cli.ok(*path, "--help").stdout
        assert "<bool>" not in text and "BOOLEAN" not in text, path


def test_root_help_lines_match_the_commands_own_help(cli) -> None:
    from newsletter.cli import LAZY_COMMANDS, app

    root = typer.main.get_command(app)
    root.load_all()
    for name, (_, line) in LAZY_COMMANDS.items():
        own = (root.commands[name].help or "").strip().splitlines()[0]
        assert own == line, name


def _modules_after(*args: str) -> set[str]:
    code = (
        "import sys\nfrom newsletter.cli import main\n"
        f"sys.argv = ['newsletter', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    return set(done.stderr.split())


HEAVY = ("flask", "jinja2", "feedparser", "email_validator", "pydantic", "rich", "premailer")


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (["--version"], ()),
        (["--help"], ()),
        # A command's help loads its own module (topics uses the subscriber core), no more.
        (["topics", "--help"], ("email_validator", "sqlite_utils")),
    ],
)
def test_quick_commands_do_not_load_heavy_modules(args: list[str], allowed: tuple) -> None:
    loaded = _modules_after(*args)
    assert "typer" in loaded  # the probe worked
    for name in (*HEAVY, "sqlite_utils", "newsletter.delivery.pipeline"):
        if name not in allowed:
            assert name not in loaded, f"{' '.join(args)} loaded {name}"


# What `status` must not load: the send pipeline, bounce processing, MIME, SMTP, rendering,
# the subscriber core and sqlite-utils (it reads the file read-only with plain sqlite3).
STATUS_NEVER = (
    *HEAVY,
    "sqlite_utils",
    "mjml",
    "newsletter.delivery.pipeline",
    "newsletter.delivery.bounces",
    "newsletter.delivery.checks",
    "newsletter.mail.message",
    "newsletter.mail.smtp",
    "newsletter.content.render",
    "newsletter.audience.subscribers",
)


@pytest.mark.parametrize("extra", [[], ["--json"], ["--failed"]])
def test_status_reads_counts_without_the_pipeline(db, workdir, extra: list[str]) -> None:
    topic = make_topic(db)
    add_people(db, topic, 2)
    edition = make_edition(db, [topic])
    db.close()  # the probe process opens the file itself, read-only
    loaded = _modules_after("status", str(edition), *extra)
    assert "newsletter.delivery.counts" in loaded and "typer" in loaded  # the probe worked
    for name in STATUS_NEVER:
        assert name not in loaded, f"status {' '.join(extra)} loaded {name}"


def test_status_on_an_older_database_migrates_it_first(cli, db) -> None:
    topic = make_topic(db)
    edition = make_edition(db, [topic])
    # As a database from before bounce reports: the quick read finds no such table.
    db.execute("DROP TABLE bounce_reports")
    db.execute("DROP INDEX deliveries_message_id")
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm130_bounce_reports'")
    out = cli.ok("status", str(edition)).stdout
    assert out.startswith(f"edition {edition}: draft; sent 0, failed 0, pending 0 of 0;")
    assert "complaints 0" in out


# --- config and init ----------------------------------------------------------------------------


def test_config_shows_values_and_their_sources(cli, workdir) -> None:
    env = {"NEWSLETTER_SMTP_HOST": "relay.example.fi", "NEWSLETTER_SMTP_PASSWORD": "pw-xyzzy"}
    data = json.loads(cli.ok("config", "--json", env=env).stdout)
    rows = {r["key"]: r for r in data["settings"]}
    assert rows["smtp.host"] == {
        "key": "smtp.host",
        "env": "NEWSLETTER_SMTP_HOST",
        "value": "relay.example.fi",
        "source": "environment",
        "example": False,
    }
    assert rows["base_url"]["source"] == "file" and rows["base_url"]["example"] is True
    assert rows["smtp.port"]["source"] == "default" and rows["smtp.port"]["value"] == "25"
    assert rows["secret"]["value"] == "set" and rows["secret"]["source"] == "file"
    assert rows["smtp.password"]["value"] == "set"
    assert rows["organisation.name"]["source"] == "environment"  # OWN_IDENTITY
    text = cli.ok("config", env=env).stdout
    assert "pw-xyzzy" not in text and "test-secret-not-for-production" not in text
    assert re.search(r"smtp\.host\s+relay\.example\.fi\s+NEWSLETTER_SMTP_HOST", text)
    assert re.search(r"smtp\.port\s+25\s+default", text)
    assert f"{workdir / 'newsletter.toml'}" in text
    via_db = json.loads(cli.ok("--db", "other.db", "config", "--json").stdout)
    assert {r["key"]: r["source"] for r in via_db["settings"]}["database"] == "option"


def test_init_ends_with_next_steps_and_the_example_keys(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from newsletter.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--config", "n.toml", "init"], env={"NEWSLETTER_DB": ""})
    assert result.exit_code == 0, result.stderr
    steps = result.stdout.split("Next steps:\n")[1].splitlines()
    assert [s[:5] for s in steps] == ["  1. ", "  2. ", "  3. "]
    for key in ("organisation.name", "organisation.address", "mail.from", "base_url"):
        assert key in steps[0]
    assert "NEWSLETTER_SECRET" in steps[1]


def test_send_refuses_the_example_identity_but_a_test_copy_only_warns(
    cli, db, smtp_sink, monkeypatch
) -> None:
    tid = make_topic(db)
    add_people(db, tid, 2)
    edition = make_edition(db, [tid])
    for name in OWN_IDENTITY:
        monkeypatch.delenv(name)
    env = {"NEWSLETTER_SMTP_HOST": smtp_sink.host, "NEWSLETTER_SMTP_PORT": str(smtp_sink.port)}
    refused = cli("send", str(edition), "--yes", env=env)
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: edition {edition} is not sent: newsletter.toml still names init's example"
        " sender: organisation.name, organisation.address, mail.from; newsletter.toml still"
        " holds init's example values: organisation.website, organisation.email,"
        " mail.reply_to, base_url\n"
    )
    assert smtp_sink.messages == []
    assert db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 0
    copy = cli.ok("send", str(edition), "--to", "me@example.fi", env=env)
    assert "a real send would refuse" in copy.stderr
    assert len(smtp_sink.messages) == 1
    assert TEST_CONFIG  # the example values come from the shared test config


# --- the send prompt, preview --open ---------------------------------------------------------


def _spawn_send(workdir: Path, sink, *args: str) -> pexpect.spawn:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")},
        **OWN_IDENTITY,
        "PYTHONPATH": str(ROOT),
        "NEWSLETTER_SMTP_HOST": sink.host,
        "NEWSLETTER_SMTP_PORT": str(sink.port),
        "COLUMNS": "200",
    }
    # --force: the shared test config keeps init's example website and base URL.
    sending = ("--force", *args)
    return pexpect.spawn(
        sys.executable,
        ["-m", "newsletter", "--config", str(workdir / "newsletter.toml"), "send", *sending],
        cwd=str(workdir),
        env=env,
        encoding="utf-8",
        timeout=60,
    )


def test_send_prompt_shows_what_it_will_do(db, workdir, smtp_sink) -> None:
    tid = make_topic(db)
    add_people(db, tid, 3)
    edition = make_edition(db, [tid])
    child = _spawn_send(workdir, smtp_sink, str(edition))
    child.expect("Send now\\? \\[y/N\\]: ")
    shown = child.before
    assert f"Subject:    {SUBJECT}" in shown
    assert "From:       Testisäätiö <uutiskirje@example.fi>" in shown
    assert "Topic(s):   Vaikuttavuus" in shown
    assert f"SMTP:       {smtp_sink.host}:{smtp_sink.port} (none)" in shown
    assert "Links to:   https://uutiskirje.example.fi" in shown
    assert "Recipients: 3 to mail now (already sent 0, failed 0, pending 0, new 3)" in shown
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and "not sent" in child.before
    assert smtp_sink.messages == []

    child = _spawn_send(workdir, smtp_sink, str(edition))
    child.expect("Send now\\? \\[y/N\\]: ")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and len(smtp_sink.messages) == 3

    # Two people join later: a resumed send counts them apart from those already mailed.
    add_people(db, tid, 2, prefix="uusi")
    child = _spawn_send(workdir, smtp_sink, str(edition), "--include-new")
    child.expect("Send now\\? \\[y/N\\]: ")
    assert "Recipients: 2 to mail now (already sent 3, failed 0, pending 0, new 2)" in child.before
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and len(smtp_sink.messages) == 5


def test_preview_open_without_a_browser_is_an_error_naming_the_file(
    cli, db, workdir, monkeypatch
) -> None:
    tid = make_topic(db)
    edition = make_edition(db, [tid])
    empty = workdir / "no-programs"
    empty.mkdir()
    for name in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    result = cli("preview", str(edition), "--open")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: no web browser found to open editions/preview-{edition}.html:"
        " open the file yourself\n"
    )


# --- the access log of serve ---------------------------------------------------------------------


def test_access_log_names_routes_never_tokens_or_addresses(settings, db) -> None:
    tid = make_topic(db)
    sid = subscribers.add(db, "liisa@example.fi", topic_ids=[tid], status="confirmed")
    config = web_settings(settings)
    key = token_key(db, config.secret)
    unsubscribe = links.unsubscribe_url(config, key, sid.subscriber_id, tid)
    preferences = links.preferences_url(config, key, sid.subscriber_id)
    log = io.StringIO()
    with LiveServer(config, access_log=log) as server:
        client = Client(server.url)
        assert client.get(unsubscribe + "?email=liisa@example.fi").status == 200
        assert client.get(preferences).status == 200
        assert client.get("/u/liisa@example.fi/extra").status == 404
        assert client.get("/subscribe?email=liisa%40example.fi").status == 200
    lines = log.getvalue().splitlines()
    assert len(lines) == 4, lines
    token = unsubscribe.rsplit("/", 1)[1]
    for line in lines:
        assert token not in line and "liisa" not in line and "@" not in line and "?" not in line
        assert "127.0.0.1" not in line
    assert re.fullmatch(r"\S+ GET /u/<token> 200 \d+ \d+ms", lines[0])
    assert " GET /p/<token> 200 " in lines[1]
    assert " GET (no route) 404 " in lines[2]
    assert " GET /subscribe 200 " in lines[3]


def test_table_cells_cannot_break_lines_or_reach_the_terminal(cli, db) -> None:
    # Staff cannot give such a name any more; an article title can still carry controls.
    topics.add_topic(db, "ohjaus", "Ohjaus")
    db.execute(
        "UPDATE topics SET name = ? WHERE slug = 'ohjaus'", ["Rivi\nkaksi\x1b[31m\tpunainen\x07"]
    )
    db.conn.commit()
    out = cli.ok("topics", "list").stdout
    assert "\x1b" not in out and "\x07" not in out
    assert len(out.splitlines()) == 3  # header, the row, the caption
    assert "Rivi kaksi\ufffd[31m punainen\ufffd" in out


def test_a_very_long_cell_is_cut_and_pads_no_other_row(cli, db) -> None:
    from newsletter.cli.output import CELL_WIDTH

    topics.add_topic(db, "lyhyt", "Lyhyt")
    topics.add_topic(db, "pitka", "Pitkä" * 600)  # 3000 characters
    lines = cli.ok("topics", "list").stdout.splitlines()
    assert all(len(line) < 3 * CELL_WIDTH + 40 for line in lines), max(map(len, lines))
    (long_row,) = [line for line in lines if "pitka" in line]
    assert "Pitkä" * 11 + "Pitk\u2026  " in long_row  # cut at the cap, and the cut shows
    data = json.loads(cli.ok("topics", "list", "--json").stdout)
    assert {"Pitkä" * 600} <= {row["name"] for row in data}  # JSON keeps it whole


# --- properties of the output helpers ----------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text() | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(JSON_VALUES, max_size=6))
def test_streamed_json_equals_json_dumps_for_any_rows(rows, capsys) -> None:
    print_json_rows(iter(rows))
    assert capsys.readouterr().out == json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_a_cell_is_one_printable_line(text) -> None:
    from newsletter.cli.output import _cell

    shown = _cell(text)
    assert len(shown) == len(text)
    assert all(ch.isprintable() or unicodedata.category(ch) == "Zs" for ch in shown)
    assert len(shown.splitlines()) <= 1 and "\x1b" not in shown


@settings(max_examples=100, deadline=None)
@given(total=st.integers(0, 50), limit=st.none() | st.integers(1, 60))
def test_limit_reads_no_more_rows_than_it_prints(total, limit) -> None:
    from newsletter.cli.output import limited

    read = []

    def rows():
        for n in range(total):
            read.append(n)
            yield n

    taken = list(limited(rows(), limit))
    expected = total if limit is None else min(total, limit)
    assert taken == list(range(expected)) and len(read) == expected


def test_access_log_file_is_private_and_appended(tmp_path) -> None:
    from newsletter.cli.serve import _open_log

    path = tmp_path / "access.log"
    for text in ("first\n", "second\n"):
        log = _open_log(str(path))
        assert log is not None
        log.write(text)
        log.close()
    assert path.read_text(encoding="utf-8") == "first\nsecond\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert _open_log("off") is None and _open_log("") is None
    assert _open_log("-") is sys.stderr


def test_a_mistyped_command_gets_a_suggestion_from_every_command(cli) -> None:
    result = cli("statsu", "1")
    assert result.exit_code == 2
    assert "No such command 'statsu'. Did you mean 'status'?" in result.stderr
    assert "Did you mean 'digest'?" in cli("digets").stderr
