"""An import is all-or-nothing for `send` too: nobody a running import is adding is a
recipient yet, and the half of an import whose process died is undone by the next `send`,
`build`, `digest` or `serve`, not only by the next import (review finding 4).

A real ``newsletter subscribers import`` process, stopped and then killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import SmtpSink
from send_helpers import make_edition
from web_helpers import LiveServer, web_settings

from newsletter.audience import subscribers
from newsletter.config import Settings
from newsletter.content import topics

KNOWN = "vakituinen@example.fi"


def smtp_env(sink: SmtpSink) -> dict[str, str]:
    return {"NEWSLETTER_SMTP_HOST": sink.host, "NEWSLETTER_SMTP_PORT": str(sink.port)}


def half_import(db, workdir: Path, *, at_least: int = 1_000) -> subprocess.Popen:
    """An import of many confirmed people, stopped (alive) after some chunks committed."""
    path = workdir / "iso.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("email\n")
        out.writelines(f"lukija{n}@example.fi\n" for n in range(60_000))
    command = ["subscribers", "import", str(path), "-t", "uutiset", "--confirmed"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", *command],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the import ended before the test could stop it"
        people = db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0]
        if people > at_least:
            os.kill(proc.pid, signal.SIGSTOP)
            return proc
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the import never started writing")


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.wait()


def runs(db) -> list[str]:
    return [row[0] for row in db.execute("SELECT status FROM import_runs ORDER BY id")]


def test_send_neither_counts_a_running_import_nor_mails_a_dead_ones_half(
    db, cli, workdir, smtp_sink
) -> None:
    tid = topics.add_topic(db, "uutiset", "Uutiset").id
    subscribers.add(db, KNOWN, topic_ids=[tid], status="confirmed")
    edition = make_edition(db, [tid])
    env = smtp_env(smtp_sink)
    proc = half_import(db, workdir)
    try:
        # Alive (stopped): its people are not recipients yet, and nothing undoes it.
        assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] > 1_000
        assert subscribers.count_recipients(db, [tid]) == 1
        listed = json.loads(cli.ok("topics", "list", "--json").stdout)
        assert [t["subscribers"] for t in listed if t["slug"] == "uutiset"] == [1]
        assert runs(db) == ["running"]
        kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Dead: the next send undoes the half before it plans, and mails only the one reader.
    planned = json.loads(cli.ok("send", str(edition), "--dry-run", "--json", env=env).stdout)
    assert planned["recipients"] == 1 and planned["first"] == [KNOWN]
    assert runs(db) == ["undone"]
    assert [row[0] for row in db.execute("SELECT email FROM subscribers")] == [KNOWN]
    cli.ok("send", str(edition), "--force", "--yes", env=env)
    assert [m.rcpt_tos for m in smtp_sink.messages] == [[KNOWN]]


def test_build_and_serve_undo_a_dead_import_too(db, cli, workdir, settings: Settings) -> None:
    tid = topics.add_topic(db, "uutiset", "Uutiset").id
    subscribers.add(db, KNOWN, topic_ids=[tid], status="confirmed")
    kill(half_import(db, workdir, at_least=600))
    cli("build", "--topic", "uutiset")  # no articles: it may refuse, but undoes first
    assert runs(db) == ["undone"]
    assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 1

    kill(half_import(db, workdir, at_least=600))
    with LiveServer(web_settings(settings)):
        assert runs(db) == ["undone", "undone"]
    assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 1
