"""An opt-out never waits for an import, and an import stays all-or-nothing.

Real processes: ``newsletter subscribers import`` runs as its own process while the test
talks to ``newsletter serve`` (waitress, in a thread) over HTTP, against one SQLite file.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from web_helpers import Client, LiveServer, csrf_of, web_settings

from newsletter import links
from newsletter.audience import subscribers
from newsletter.content import topics
from newsletter.store.db import token_key


def start_import(workdir: Path, path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "subscribers", "import", str(path), *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_writing(db, proc: subprocess.Popen, *, at_least: int) -> None:
    """Until the import process has committed some chunks (and is still running)."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        running = db.execute("SELECT COUNT(*) FROM import_runs WHERE status = 'running'")
        people = db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0]
        if running.fetchone()[0] and people >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError("the import never started writing")


def subscription(db, sid: int, tid: int) -> str | None:
    row = db.execute(
        "SELECT status FROM subscriptions WHERE subscriber_id = ? AND topic_id = ?", [sid, tid]
    ).fetchone()
    return row[0] if row else None


@pytest.mark.slow
def test_one_click_and_preferences_during_a_million_row_import(db, settings, workdir) -> None:
    tid = topics.add_topic(db, "uutiset", "Uutiset").id
    leaving = subscribers.add(db, "lahtija@example.fi", topic_ids=[tid]).subscriber_id
    other = subscribers.add(db, "toinen@example.fi", topic_ids=[tid]).subscriber_id
    rows = 1_000_000
    path = workdir / "miljoona.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("email,topics\n")
        out.writelines(f"lukija{n}@example.fi,\n" for n in range(rows - 2))
        # The last rows would confirm them again for the topic they are about to leave.
        out.write("lahtija@example.fi,uutiset\ntoinen@example.fi,uutiset\n")
    proc = start_import(workdir, path, "--confirmed", "--json")
    try:
        wait_until_writing(db, proc, at_least=10_000)
        site = web_settings(settings)
        token = links.unsubscribe_token(token_key(db, site.secret), leaving, tid)
        preferences = links.preferences_url(site, token_key(db, site.secret), other)
        with LiveServer(site) as server:
            client = Client(server.url)
            reply = client.post(
                f"/u/{token}",
                body=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            page = client.get(preferences)
            saved = client.post(
                preferences, form={"csrf": csrf_of(page.body), "action": "unsubscribe_all"}
            )
            import_still_running = proc.poll() is None
            people_at_answer = db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0]
        assert 200 <= reply.status < 300, reply
        assert (page.status, saved.status) == (200, 200)
        # Answered while the import was still writing, and recorded at once.
        assert import_still_running and people_at_answer < rows
        assert subscription(db, leaving, tid) == "unsubscribed"
        assert subscription(db, other, tid) == "unsubscribed"
        out, err = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert (report["added"], report["invalid"]) == (rows - 2, [])
    assert report["suppressed_by_reason"] == {"unsubscribed_here": 2}
    assert subscription(db, leaving, tid) == "unsubscribed"
    assert subscription(db, other, tid) == "unsubscribed"
    assert list(subscribers.recipients(db, [tid])) == []
    assert db.execute("SELECT COUNT(*) FROM import_undo").fetchone()[0] == 0


def test_an_import_killed_midway_is_undone_by_the_next_one(cli, db, workdir) -> None:
    tid = topics.add_topic(db, "uutiset", "Uutiset").id
    known = subscribers.add(db, "tuttu@example.fi", name="Vanha Nimi", topic_ids=[tid])
    path = workdir / "iso.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name\ntuttu@example.fi,Uusi Nimi\n")
        out.writelines(f"lukija{n}@example.fi,Lukija {n}\n" for n in range(200_000))
    before = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    proc = start_import(workdir, path, "-t", "uutiset", "--confirmed")
    try:
        wait_until_writing(db, proc, at_least=2_000)
        os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Half done: the rename is visible, as are the first chunks' people.
    assert subscribers.require(db, "tuttu@example.fi")["name"] == "Uusi Nimi"
    assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] > 1
    (workdir / "pieni.csv").write_text("email\npieni@example.fi\n", encoding="utf-8")
    result = cli.ok("subscribers", "import", "pieni.csv")
    assert "warning: undid the unfinished import of iso.csv" in result.stderr
    emails = [row[0] for row in db.execute("SELECT email FROM subscribers ORDER BY id")]
    assert emails == ["tuttu@example.fi", "pieni@example.fi"]
    assert subscribers.require(db, "tuttu@example.fi")["name"] == "Vanha Nimi"
    assert subscribers.subscription_statuses(db, known.subscriber_id) == {tid: "confirmed"}
    # Its events are gone too; the second import's one (create) remains.
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == before + 1
    runs = db.execute("SELECT source, status FROM import_runs ORDER BY id").fetchall()
    assert runs == [("import:iso.csv", "undone"), ("import:pieni.csv", "done")]


def test_a_long_import_shows_a_progress_bar_on_a_terminal(db, workdir) -> None:
    topics.add_topic(db, "uutiset", "Uutiset")
    path = workdir / "pitka.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("email\n")
        out.writelines(f"lukija{n}@example.fi\n" for n in range(60_000))
    main, child = pty.openpty()  # stderr is a terminal, as when staff run it
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "subscribers", "import", str(path), "-t", "uutiset"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=child, text=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(child)
    reader.join(timeout=10)
    os.close(main)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert "60000 added" in out
    assert "writing pitka.csv" in shown and "%" in shown
