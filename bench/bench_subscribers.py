"""Subscriber import and export against the plain tools, with peak memory.

- Import of 100,000 rows (validated) vs ``sqlite-utils insert db t file.csv --csv``.
  Goal: within 2x.
- Export of the 1,000,000 recipients of a topic vs ``sqlite3 -csv`` running the very same
  query (``export.export_query``). Goal: within 2x.
- Peak memory (max RSS of each process, from ``os.wait4``) at two sizes, to show whether it
  stays flat.

Every run is a separate process started the way a user would start it, so start-up time
counts on both sides. Data is generated in a temporary folder: ``python -m bench``.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from newsletter.audience import export
from newsletter.content import topics
from newsletter.content.topics import slugify
from newsletter.store.db import open_db

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
FIRST = ["Aino", "Mikko", "Päivi", "Jyrki", "Åsa", "Björn", "Sarah", "Liisa", "Tuomas", "Ebba"]
LAST = ["Virtanen", "Mäkelä", "Östman", "Lindström", "Korhonen", "Smith", "Hämäläinen", "Niemi"]
LANGS = ["fi", "fi", "fi", "sv", "en"]
TOPIC = "Yhteisövaikuttavuus"

CONFIG = """\
database = "{db}"
base_url = "https://uutiskirje.example.fi"
"""


def run(args: list[str], *, env: dict[str, str] | None = None, stdout=None) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of one child process, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=stdout or subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {args[:3]}... exited {proc.returncode}")
    return elapsed, usage.ru_maxrss // 1024  # kilobytes on Linux


def write_csv(path: Path, rows: int) -> None:
    rnd = random.Random(4)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,lang\n")
        for n in range(rows):
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            local = slugify(first)  # addresses are ASCII, names are not
            out.write(f"{local}.{n}@Example{n % 97}.FI,{first} {last},{rnd.choice(LANGS)}\n")


def newsletter_cmd(config: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "NEWSLETTER_CONFIG": str(config)}
    return [sys.executable, "-m", "newsletter", *args], env


def bench_import(work: Path, rows: int) -> tuple[float, int, float, int]:
    data = work / f"people-{rows}.csv"
    write_csv(data, rows)
    base_db = work / f"baseline-{rows}.db"
    base = run([str(VENV_BIN / "sqlite-utils"), "insert", str(base_db), "t", str(data), "--csv"])
    config = work / f"import-{rows}.toml"
    config.write_text(CONFIG.format(db=work / f"import-{rows}.db"), encoding="utf-8")
    args, env = newsletter_cmd(config, "topics", "add", "yhteisovaikuttavuus", "--name", TOPIC)
    run(args, env=env)
    args, env = newsletter_cmd(
        config, "subscribers", "import", str(data), "--topic", TOPIC, "--confirmed"
    )
    ours = run(args, env=env)
    return (*ours, *base)


def fill_db(path: Path, rows: int) -> int:
    """``rows`` confirmed recipients of the topic, plus 5% noise that must not be exported."""
    db = open_db(path)
    tid = topics.add_topic(db, "yhteisovaikuttavuus", TOPIC).id
    other = topics.add_topic(db, "hyvinvointi", "Hyvinvointi").id
    stamp = "2025-06-01T09:00:00+00:00"
    conn: sqlite3.Connection = db.conn
    total = rows + rows // 20
    chunk = 100_000
    for start in range(1, total + 1, chunk):
        ids = range(start, min(start + chunk, total + 1))
        conn.executemany(
            "INSERT INTO subscribers (id, email, email_key, name, lang, status, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    n,
                    f"lukija.{n}@example.fi",
                    f"lukija.{n}@example.fi",
                    f"Lukija Mäkelä {n}",
                    LANGS[n % 5],
                    "bounced" if n > rows else "active",
                    stamp,
                    stamp,
                )
                for n in ids
            ),
        )
        conn.executemany(
            "INSERT INTO subscriptions VALUES (?, ?, 'confirmed', ?, ?)",
            ((n, tid, stamp, stamp) for n in ids),
        )
        conn.executemany(
            "INSERT INTO subscriptions VALUES (?, ?, 'confirmed', ?, ?)",
            ((n, other, stamp, stamp) for n in ids if n % 3 == 0),
        )
        conn.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return tid


def inline(sql: str, params: list[object]) -> str:
    for value in params:
        literal = (
            str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"
        )
        sql = sql.replace("?", literal, 1)
    return sql


def bench_export(work: Path, rows: int) -> tuple[float, int, float, int]:
    path = work / f"export-{rows}.db"
    tid = fill_db(path, rows)
    sql, params = export.export_query(topic_id=tid, spreadsheet_safe=True)
    config = work / f"export-{rows}.toml"
    config.write_text(CONFIG.format(db=path), encoding="utf-8")
    args, env = newsletter_cmd(config, "subscribers", "export", "--topic", TOPIC)
    with (work / "ours.csv").open("wb") as out:
        ours = run(args, env=env, stdout=out)
    with (work / "base.csv").open("wb") as out:
        base = run(["sqlite3", "-csv", "-header", str(path), inline(sql, params)], stdout=out)
    got = (work / "ours.csv").read_bytes().count(b"\n")
    if got != rows + 1:
        raise SystemExit(f"bench: export wrote {got - 1} rows, expected {rows}")
    return (*ours, *base)


def report(
    label: str, ours_s: float, ours_mb: int, base_s: float, base_mb: int, *, base: str, goal: bool
) -> None:
    ratio = ours_s / base_s
    verdict = ("OK" if ratio <= 2 else "MISSED") if goal else "no goal at this size"
    print(
        f"{label:28} newsletter {ours_s:6.2f} s {ours_mb:5d} MB | {base:12} {base_s:6.2f} s"
        f" {base_mb:5d} MB | ratio {ratio:4.2f} (goal <= 2: {verdict})",
        flush=True,
    )


def main() -> None:
    if not shutil.which("sqlite3"):
        raise SystemExit("bench: the sqlite3 command-line tool is needed")
    startup, startup_mb = run([sys.executable, "-m", "newsletter", "--version"])
    print(f"(start-up of the newsletter command alone: {startup:.2f} s, {startup_mb} MB)")
    with tempfile.TemporaryDirectory(prefix="bench-subscribers-") as tmp:
        work = Path(tmp)
        for rows in (10_000, 100_000):
            result = bench_import(work, rows)
            report(f"import {rows:,} rows", *result, base="sqlite-utils", goal=rows == 100_000)
        for rows in (100_000, 1_000_000):
            result = bench_export(work, rows)
            report(f"export {rows:,} recipients", *result, base="sqlite3 -csv", goal=rows > 100_000)


if __name__ == "__main__":
    main()
