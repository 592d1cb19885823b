"""How soon the first message of a large send is out (issue 17): the real command,
``python -m newsletter send <edition> --yes --force`` (the sample settings hold example
values the pre-send checks warn about) on a list of 1,000,000 (``BENCH_QUICK=1``: 100,000),
into Postfix's ``smtp-sink``, timed from starting the command to the first row the database
shows as sent (polled from here every 10 ms). Goal: within 5 s at 1M.

The command is stopped (SIGKILL) once the first result is in: the rest would only repeat
what ``bench_postfix`` measures.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_postfix import start_smtp_sink
from bench.bench_send import SETTINGS, make_db

ROOT = Path(__file__).resolve().parent.parent


def first_sent_after(count: int) -> float:
    sink, port = start_smtp_sink()
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "first.db"
            edition = make_db(path, count)
            env = {
                **os.environ,
                "NEWSLETTER_CONFIG": str(Path(folder) / "none.toml"),
                "NEWSLETTER_DB": str(path),
                "NEWSLETTER_BASE_URL": SETTINGS.base_url,
                "NEWSLETTER_SECRET": SETTINGS.secret,
                # Not init's example sender: no --force sends as that.
                "NEWSLETTER_FROM": "Mittaussäätiö <uutiskirje@mittaus.test>",
                "NEWSLETTER_SMTP_HOST": "127.0.0.1",
                "NEWSLETTER_SMTP_PORT": str(port),
            }
            watcher = sqlite3.connect(str(path))
            command = [sys.executable, "-m", "newsletter", "send", str(edition), "--yes", "--force"]
            start = time.perf_counter()
            child = subprocess.Popen(
                command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                return _wait_for_first(watcher, child, edition) - start
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait()
                watcher.close()
    finally:
        sink.kill()
        sink.wait()


def _wait_for_first(watcher: sqlite3.Connection, child: subprocess.Popen, edition: int) -> float:
    # Through the (edition, status) index: a scan every 10 ms would slow the send it watches.
    query = "SELECT 1 FROM deliveries WHERE edition_id = ? AND status = 'sent' LIMIT 1"
    while child.poll() is None:
        try:
            if watcher.execute(query, [edition]).fetchone():
                return time.perf_counter()
        except sqlite3.OperationalError:
            pass  # the table is not there yet, or the file is being set up
        time.sleep(0.01)
    assert child.stderr is not None
    raise RuntimeError(f"send ended first: {child.stderr.read().decode()[:300]}")


def main() -> None:
    count = 100_000 if os.environ.get("BENCH_QUICK") == "1" else 1_000_000
    seconds = first_sent_after(count)
    verdict = "ok" if seconds <= 5 else "ABOVE GOAL"
    print(
        f"(first) `newsletter send` to {count:,} recipients: first message sent after"
        f" {seconds:.2f} s (goal <= 5 s at 1M: {verdict}); load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
