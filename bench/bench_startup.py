"""Start-up of short commands: ``--version``, ``--help``, ``status``, ``config``.

Goal (issue 17): ``--help``, ``--version`` and ``status`` answer in <= 0.15 s. Each figure
is the minimum and the median wall time of RUNS fresh processes, beside an empty Python
(``python -c pass``) and sqlite-utils' own ``--help`` on the same machine. Also printed:
the modules ``-X importtime`` blames most for ``status``, so a regression names its cause.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from newsletter.content import topics
from newsletter.store.db import open_db

RUNS = 15
GOAL = 0.15
VENV_BIN = Path(sys.executable).parent


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def heaviest_imports(args: list[str], env: dict[str, str], count: int = 6) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], env=env, capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        # Top-level imports only: their name follows exactly one space.
        if len(parts) == 3 and parts[1].strip().isdigit() and parts[2][:2].count(" ") == 1:
            rows.append((int(parts[1]), parts[2].strip()))
    return [f"{name} {us / 1000:.0f} ms" for us, name in sorted(rows, reverse=True)[:count]]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        db_path = Path(tmp) / "s.db"
        db = open_db(db_path)
        topic = topics.add_topic(db, "vaikuttavuus", "Vaikuttavuus").id
        stamp = "2026-01-01T00:00:00+00:00"
        with db.atomic():
            db.execute(
                "INSERT INTO editions (subject, lang, template, html, text, status, created,"
                " updated) VALUES ('s', 'fi', 'default', '', '', 'draft', ?, ?)",
                [stamp, stamp],
            )
            db.execute("INSERT INTO edition_topics VALUES (1, ?)", [topic])
        db.close()
        env = {**os.environ, "NEWSLETTER_DB": str(db_path), "NEWSLETTER_CONFIG": "absent.toml"}
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "sqlite-utils --help": [str(VENV_BIN / "sqlite-utils"), "--help"],
            "newsletter --version": [sys.executable, "-m", "newsletter", "--version"],
            "newsletter --help": [sys.executable, "-m", "newsletter", "--help"],
            "newsletter status 1": [sys.executable, "-m", "newsletter", "status", "1"],
            "newsletter config": [sys.executable, "-m", "newsletter", "config"],
        }
        for label, args in cases.items():
            low, median = timed(args, env)
            goal = ""
            if label in ("newsletter --version", "newsletter --help", "newsletter status 1"):
                goal = f"  (goal <= {GOAL} s: {'OK' if low <= GOAL else 'MISSED'})"
            print(f"{label:24} min {low:5.3f} s  median {median:5.3f} s{goal}", flush=True)
        top = heaviest_imports(["-m", "newsletter", "status", "1"], env)
        print("status: heaviest top-level imports: " + ", ".join(top))


if __name__ == "__main__":
    main()
