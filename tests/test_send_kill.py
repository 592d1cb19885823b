"""A real ``newsletter send`` process, stopped by SIGKILL or Ctrl-C, then resumed."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from build_helpers import HELSINKI, TOPIC, TOPIC_SLUG, add_articles, sample_articles
from conftest import OWN_IDENTITY, ROOT
from send_helpers import add_people, make_edition, make_topic

from newsletter.audience import subscribers
from newsletter.content import editions, topics
from newsletter.delivery import pipeline
from newsletter.store.db import open_db

CONCURRENCY = 3


def start_send(workdir: Path, sink, edition: int, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        **OWN_IDENTITY,
        "PYTHONPATH": str(ROOT),
        "NEWSLETTER_SMTP_HOST": sink.host,
        "NEWSLETTER_SMTP_PORT": str(sink.port),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter",
            "--config",
            str(workdir / "newsletter.toml"),
            "send",
            str(edition),
            "--force",  # the test settings are init's example values
            "--yes",
            "--concurrency",
            str(CONCURRENCY),
            *extra,
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_sent(settings, edition: int, at_least: int, process: subprocess.Popen) -> int:
    watcher = open_db(settings.db)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sent = pipeline.status(watcher, edition)["sent"]
            if sent >= at_least:
                return sent
            assert process.poll() is None, process.communicate()
            time.sleep(0.005)
    finally:
        watcher.close()
    raise AssertionError(f"fewer than {at_least} sent within a minute")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sigkill_at_a_random_point_then_resume(workdir, settings, db, smtp_sink, seed):
    """Seed 0 kills during start-up (possibly while the delivery log is being fixed)."""
    rng = random.Random(seed)
    topic = make_topic(db)
    emails = add_people(db, topic, 240)
    edition = make_edition(db, [topic])
    kill_after = rng.randint(1, 200) if seed else 0

    first = start_send(workdir, smtp_sink, edition, "--rate", "400", "--batch-size", "25")
    if kill_after:
        wait_for_sent(settings, edition, kill_after, first)
        time.sleep(rng.random() * 0.05)  # between two writes, or in the middle of one
    else:
        time.sleep(0.2 + rng.random() * 0.3)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = pipeline.status(db, edition)
    if kill_after:
        assert before["pending"] > 0 and before["status"] == "sending"
    # The dead process still holds the lock; the next send takes it over.
    assert db.execute("SELECT lock_pid FROM editions").fetchone()[0] in (first.pid, None)

    second = start_send(workdir, smtp_sink, edition, "--rate", "400")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "pending 0 of 240" in out

    copies = Counter(r for m in smtp_sink.messages for r in m.rcpt_tos)
    assert set(copies) == set(emails)  # nobody skipped
    doubles = [email for email, n in copies.items() if n == 2]
    assert len(doubles) <= CONCURRENCY, doubles
    assert max(copies.values()) <= 2
    final = pipeline.status(db, edition)
    assert (final["status"], final["sent"], final["pending"]) == ("sent", 240, 0)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(workdir, settings, db, smtp_sink):
    topic = make_topic(db)
    emails = add_people(db, topic, 60)
    edition = make_edition(db, [topic])

    first = start_send(workdir, smtp_sink, edition, "--rate", "25")
    wait_for_sent(settings, edition, 5, first)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=30)

    assert first.returncode == 1
    assert f"edition {edition}: paused;" in out
    assert "Traceback" not in err
    assert f"still pending: run `newsletter send {edition}` again to continue" in err
    numbers = pipeline.status(db, edition)
    assert numbers["status"] == "paused" and numbers["failed"] == 0
    assert 5 <= numbers["sent"] < 60 and numbers["sent"] + numbers["pending"] == 60
    # Everything handed to the server before the stop was recorded: no unknown state.
    assert len(smtp_sink.messages) == numbers["sent"]
    lock = db.execute("SELECT lock_owner, lock_pid FROM editions WHERE id = ?", [edition])
    assert lock.fetchone() == (None, None)

    second = start_send(workdir, smtp_sink, edition, "--rate", "500")
    assert second.wait(timeout=60) == 0
    copies = Counter(r for m in smtp_sink.messages for r in m.rcpt_tos)
    assert sorted(copies) == emails and set(copies.values()) == {1}


@pytest.mark.parametrize("seed", [5, 6])
def test_sigkill_and_resume_of_a_multi_language_edition(workdir, settings, db, smtp_sink, seed):
    """Every reader still gets exactly their own language's variant, across the kill."""
    rng = random.Random(seed)
    topic = topics.add_topic(db, TOPIC_SLUG, TOPIC, names={"sv": "Samhälle", "en": "Society"})
    langs = {}
    for number in range(300):  # enough left after the last kill point (147) at --rate 400
        lang = ("fi", "sv", "en")[number % 3]
        email = f"lukija{number:05d}@example.org"
        subscribers.add(db, email, lang=lang, topic_ids=[topic.id], status="confirmed")
        langs[email] = lang
    add_articles(db, sample_articles(datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)))
    edition = editions.build(
        db, settings, topics=[TOPIC_SLUG], since="2025-08-01", until=None, limit=None,
        subject=None, intro=None, lang=["fi", "sv", "en"], template=None,
        out=workdir / "editions",
    ).edition_id  # fmt: skip

    first = start_send(workdir, smtp_sink, edition, "--rate", "400", "--batch-size", "25")
    wait_for_sent(settings, edition, rng.randint(1, 150), first)
    time.sleep(rng.random() * 0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert pipeline.status(db, edition)["pending"] > 0

    second = start_send(workdir, smtp_sink, edition, "--rate", "400")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "pending 0 of 300" in out

    copies = Counter(r for m in smtp_sink.messages for r in m.rcpt_tos)
    assert set(copies) == set(langs) and max(copies.values()) <= 2
    assert sum(n == 2 for n in copies.values()) <= CONCURRENCY
    for received in smtp_sink.messages:
        (to,) = received.rcpt_tos
        html = received.message.get_body(("html",)).get_content()
        found = re.search(r'<html[^>]*\blang="(\w+)"', html)
        assert found and found.group(1) == langs[to], to
    by_lang = pipeline.language_counts(db, edition)
    assert {lang: n["sent"] for lang, n in by_lang.items()} == {"en": 100, "fi": 100, "sv": 100}
