"""``newsletter digest``: import, build when there is news, check, send; idempotent, locked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from conftest import OWN_IDENTITY, ROOT
from send_helpers import add_people, make_topic

from newsletter.store.db import open_db

PEOPLE = 12


def write_feed(path: Path, items: list[tuple[str, datetime]]) -> None:
    entries = "".join(
        f"<item><title>{title}</title><link>https://www.example.fi/a/{i}</link>"
        f"<guid>https://www.example.fi/a/{i}</guid><pubDate>{format_datetime(when)}</pubDate>"
        f"<description>Tiivistelmä {i}</description></item>"
        for i, (title, when) in enumerate(items)
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Säätiö</title>'
        f"<link>https://www.example.fi/</link>{entries}</channel></rss>",
        encoding="utf-8",
    )


# The organisation's own values for every key `init` writes an example for: a digest runs the
# full pre-send check, as `send` does without --force.
OWN_SETTINGS = {
    **OWN_IDENTITY,
    "NEWSLETTER_ORG_WEBSITE": "https://www.testisaatio.fi",
    "NEWSLETTER_ORG_EMAIL": "info@testisaatio.fi",
    "NEWSLETTER_REPLY_TO": "info@testisaatio.fi",
    "NEWSLETTER_BASE_URL": "https://uutiskirje.testisaatio.fi",
}


def digest_env(workdir: Path, sink, feed: Path, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")},
        **OWN_SETTINGS,
        "PYTHONPATH": str(ROOT),
        "NEWSLETTER_CONFIG": str(workdir / "newsletter.toml"),
        "NEWSLETTER_SMTP_HOST": sink.host,
        "NEWSLETTER_SMTP_PORT": str(sink.port),
        "NEWSLETTER_RATE": "40",  # slow enough that two runs started together overlap
        "NEWSLETTER_DIGEST_FEEDS": f"vaikuttavuus={feed}",
        **extra,
    }


def start_digest(workdir: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "digest", "--topic", "Vaikuttavuus", *extra],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def setup(db) -> None:
    tid = make_topic(db)
    add_people(db, tid, PEOPLE)


def per_person(sink) -> Counter:
    return Counter(address for m in sink.messages for address in m.rcpt_tos)


def test_two_concurrent_runs_send_once_and_a_third_sends_nothing(db, workdir, smtp_sink):
    setup(db)
    feed = workdir / "feed.xml"
    fresh = datetime.now(UTC) - timedelta(days=1)
    write_feed(feed, [("Uusi hanke alkaa", fresh), ("Toinen uutinen", fresh)])
    env = digest_env(workdir, smtp_sink, feed)
    runs = [start_digest(workdir, env) for _ in range(2)]
    results = [finish(p) for p in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    everything = " ".join(out + err for _, out, err in results)
    assert "built and sent" in everything
    assert "another `newsletter digest --topic vaikuttavuus` is running" in everything or (
        "nothing new" in everything
    )
    counts = per_person(smtp_sink)
    assert len(counts) == PEOPLE and set(counts.values()) == {1}, counts
    assert "Uusi hanke alkaa" in smtp_sink.messages[0].message.get_body(("plain",)).get_content()

    code, out, _ = finish(start_digest(workdir, env))
    assert code == 0 and "nothing new" in out
    assert len(smtp_sink.messages) == PEOPLE

    # A newer article in the feed makes the next run send a new edition with only it.
    write_feed(
        feed,
        [
            ("Uusi hanke alkaa", fresh),
            ("Toinen uutinen", fresh),
            ("Viikon uutinen", datetime.now(UTC)),
        ],
    )
    code, out, _ = finish(start_digest(workdir, env, "--json"))
    assert code == 0
    report = json.loads(out)
    assert report["action"] == "built and sent" and report["new_articles"] == 1
    assert report["send"]["sent"] == PEOPLE
    assert set(per_person(smtp_sink).values()) == {2}
    editions = (
        open_db(workdir / "subscribers.db")
        .execute("SELECT status, COUNT(*) FROM editions GROUP BY status")
        .fetchall()
    )
    assert editions == [("sent", 2)]


def test_dry_run_imports_and_sends_nothing(db, workdir, smtp_sink):
    setup(db)
    feed = workdir / "feed.xml"
    write_feed(feed, [("Uusi hanke alkaa", datetime.now(UTC))])
    code, out, err = finish(
        start_digest(workdir, digest_env(workdir, smtp_sink, feed), "--dry-run")
    )
    assert code == 0, err
    assert out.startswith("dry run, nothing done: vaikuttavuus: nothing new")
    assert "after importing 1 feed(s)" in out
    assert db.execute("SELECT COUNT(*) FROM articles").fetchone()[0] == 0
    assert smtp_sink.messages == []


def test_example_identity_stops_the_send_and_the_next_run_resumes(db, workdir, smtp_sink):
    setup(db)
    feed = workdir / "feed.xml"
    write_feed(feed, [("Uusi hanke alkaa", datetime.now(UTC))])
    env = digest_env(workdir, smtp_sink, feed)
    example = {k: v for k, v in env.items() if k not in OWN_SETTINGS}
    code, _, err = finish(start_digest(workdir, example))
    assert code == 1
    # The same refusal as `send` without --force (a digest has no --force).
    assert err.strip().splitlines()[-1] == (
        "error: edition 1 is not sent: newsletter.toml still names init's example sender:"
        " organisation.name, organisation.address, mail.from; newsletter.toml still holds"
        " init's example values: organisation.website, organisation.email, mail.reply_to,"
        " base_url"
    )
    assert "Traceback" not in err and smtp_sink.messages == []
    code, out, err = finish(start_digest(workdir, env))
    assert code == 0, err
    assert "resumed: edition 1" in out
    assert len(smtp_sink.messages) == PEOPLE


def test_a_feed_that_cannot_be_read_stops_before_anything_is_built(db, workdir, smtp_sink):
    setup(db)
    env = digest_env(workdir, smtp_sink, workdir / "missing.xml")
    code, _, err = finish(start_digest(workdir, env))
    assert code == 1 and err.startswith("error: no feed of vaikuttavuus could be read")
    assert db.execute("SELECT COUNT(*) FROM editions").fetchone()[0] == 0


def test_a_run_while_another_holds_the_lock_does_nothing(db, workdir, smtp_sink, settings):
    from newsletter.delivery import digest

    setup(db)
    feed = workdir / "feed.xml"
    write_feed(feed, [("Uusi hanke alkaa", datetime.now(UTC))])
    with digest.topic_lock(settings, "vaikuttavuus"):
        code, out, err = finish(start_digest(workdir, digest_env(workdir, smtp_sink, feed)))
    assert code == 0 and out == ""
    assert err == (
        "warning: another `newsletter digest --topic vaikuttavuus` is running; nothing done\n"
    )
    assert smtp_sink.messages == []
    assert db.execute("SELECT COUNT(*) FROM articles").fetchone()[0] == 0


def test_a_high_bounce_rate_stops_the_next_digest_unless_allowed(db, workdir, smtp_sink, cli):
    setup(db)
    feed = workdir / "feed.xml"
    write_feed(feed, [("Uusi hanke alkaa", datetime.now(UTC) - timedelta(days=1))])
    env = digest_env(workdir, smtp_sink, feed)
    gone = "lukija00003@example.org"
    smtp_sink.reply = lambda e: "550 5.1.1 no such user" if gone in e.rcpt_tos else None
    first = cli("digest", "--topic", "Vaikuttavuus", env=env)
    assert first.exit_code == 0, first.output
    assert len(smtp_sink.messages) == PEOPLE - 1  # 1 of 12 bounced: 8.3%, above 2%

    old_news = ("Uusi hanke alkaa", datetime.now(UTC) - timedelta(days=1))
    write_feed(feed, [old_news, ("Viikon uutinen", datetime.now(UTC))])
    # Unattended nobody reads a warning: the run stops before it builds, says why, exits 1.
    refused = cli("digest", "--topic", "Vaikuttavuus", "--json", env=env)
    assert refused.exit_code == 1
    report = json.loads(refused.stdout)
    assert report["action"].startswith("not sent: the last edition bounced")
    assert report["edition"] is None and report["send"] is None
    assert report["warnings"] == [
        "the last edition (1) had a bounce rate 8.3% (above 2%): mailbox providers may start"
        " to refuse or junk your mail; clean the list before sending more"
    ]
    assert f"warning: {report['warnings'][0]}" in refused.stderr
    assert "digest.send_despite_bounces = true" in refused.stderr
    dry = cli("digest", "--topic", "Vaikuttavuus", "--dry-run", env=env)
    assert dry.exit_code == 1 and "would send nothing: the last edition bounced" in dry.stdout
    assert db.execute("SELECT COUNT(*) FROM editions").fetchone()[0] == 1
    assert len(smtp_sink.messages) == PEOPLE - 1

    allowed = {**env, "NEWSLETTER_DIGEST_SEND_DESPITE_BOUNCES": "true"}
    sent = cli("digest", "--topic", "Vaikuttavuus", "--json", env=allowed)
    assert sent.exit_code == 0, sent.output
    report = json.loads(sent.stdout)
    assert report["action"] == "built and sent" and report["send"]["sent"] == PEOPLE - 1
    assert "bounce rate 8.3% (above 2%)" in report["warnings"][0]
    assert "warning: the last edition (1) had a bounce rate 8.3%" in sent.stderr
