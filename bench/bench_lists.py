"""Memory of list output as lists grow: ``subscribers list --json`` and the table.

Goal (issue 17): peak RSS flat from 10k to 1M rows, where collecting every row first took
2.6 GB at 1M. Each run is a fresh process writing to /dev/null; peak RSS from ``wait4``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench.bench_subscribers import fill_db, run

SIZES = (10_000, 100_000, 1_000_000)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-lists-") as tmp:
        for rows in SIZES:
            path = Path(tmp) / f"lists-{rows}.db"
            fill_db(path, rows)
            env = {**os.environ, "NEWSLETTER_DB": str(path), "NEWSLETTER_CONFIG": "absent.toml"}
            base = [sys.executable, "-m", "newsletter", "subscribers", "list"]
            with open(os.devnull, "wb") as sink:
                json_s, json_mb = run([*base, "--json"], env=env, stdout=sink)
                table_s, table_mb = run(base, env=env, stdout=sink)
            print(
                f"subscribers list {rows:>9,} rows: --json {json_s:6.2f} s {json_mb:4d} MB"
                f" | table {table_s:6.2f} s {table_mb:4d} MB",
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    main()
