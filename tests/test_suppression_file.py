"""Moving to a new database keeps erased and blocked people out (review finding 9): the
suppression list's keyed hashes go out with `subscribers export --format suppressions` and
back in with `subscribers import --suppress`. Real SQLite files, the CLI in-process."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from newsletter.audience import subscribers
from newsletter.content import topics
from newsletter.store.db import open_db

ERASED, BLOCKED, STAYS = "poistettu@example.fi", "estetty@example.fi", "pysyy@example.fi"


def old_database(cli, db) -> None:
    tid = topics.add_topic(db, "uutiset", "Uutiset").id
    for email in (ERASED, STAYS):
        subscribers.add(db, email, topic_ids=[tid], status="confirmed")
    cli.ok("subscribers", "remove", ERASED)
    cli.ok("subscribers", "block", BLOCKED)


def test_a_new_database_keeps_the_erased_and_blocked_out(cli, db, workdir: Path) -> None:
    old_database(cli, db)
    cli.ok("subscribers", "export", "--format", "suppressions", "-o", "estot.csv")
    cli.ok("subscribers", "export", "-o", "ihmiset.csv")
    hashes = (workdir / "estot.csv").read_text(encoding="utf-8")
    assert stat.S_IMODE((workdir / "estot.csv").stat().st_mode) == 0o600
    assert "@" not in hashes and len(hashes.splitlines()) == 3  # header + two entries

    env = {"NEWSLETTER_DB": str(workdir / "uusi.db")}
    first = json.loads(
        cli.ok("subscribers", "import", "estot.csv", "--suppress", "--json", env=env).stdout
    )
    assert first["suppressed"] == 2
    cli.ok("subscribers", "import", "ihmiset.csv", "--confirmed", env=env)
    # An old list with everyone on it, imported as confirmed: the two stay out.
    (workdir / "vanha.csv").write_text(f"email\n{ERASED}\n{BLOCKED}\n{STAYS}\n", encoding="utf-8")
    report = json.loads(
        cli.ok(
            "subscribers", "import", "vanha.csv", "-t", "uutiset", "--confirmed", "--json", env=env
        ).stdout
    )
    assert report["suppressed"] == 2
    fresh = open_db(workdir / "uusi.db")
    try:
        tid = topics.resolve(fresh, "uutiset").id
        assert [r.email for r in subscribers.recipients(fresh, [tid])] == [STAYS]
        assert subscribers.find(fresh, ERASED) is None and subscribers.find(fresh, BLOCKED) is None
        assert subscribers.suppression_reason(fresh, BLOCKED) == "blocklisted:cli"
    finally:
        fresh.close()
    # Reading the file again changes nothing.
    again = cli.ok("subscribers", "import", "estot.csv", "--suppress", "--json", env=env)
    assert json.loads(again.stdout)["suppressed"] == 2


def test_a_suppression_file_is_refused_where_other_hashes_live(cli, db, workdir: Path) -> None:
    old_database(cli, db)
    cli.ok("subscribers", "export", "--format", "suppressions", "-o", "estot.csv")
    env = {"NEWSLETTER_DB": str(workdir / "toinen.db")}
    cli.ok("subscribers", "block", "joku@example.fi", env=env)  # a list of its own
    result = cli("subscribers", "import", "estot.csv", "--suppress", env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: estot.csv comes from a database with another")
    assert len(result.stderr.strip().splitlines()) == 1
    other = open_db(workdir / "toinen.db")
    try:
        assert other.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0] == 1
    finally:
        other.close()
    # A tampered row is one line too, and nothing is written.
    lines = (workdir / "estot.csv").read_text(encoding="utf-8").splitlines()
    (workdir / "paha.csv").write_text("\n".join([lines[0], "x,y,z,w"]) + "\n", encoding="utf-8")
    bad = cli(
        "subscribers",
        "import",
        "paha.csv",
        "--suppress",
        env={"NEWSLETTER_DB": str(workdir / "kolmas.db")},
    )
    assert bad.exit_code == 1 and bad.stderr.startswith("error: paha.csv:2: not a suppression")
