"""Subscribers: the CLI, importing real-shaped files, streaming export, GDPR access and erasure."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from newsletter.audience import export, importer, subscribers
from newsletter.content import topics
from newsletter.errors import NewsletterError

DATA = Path(__file__).parent / "data" / "subscribers"
SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "subscribers.csv"


# Helpers -----------------------------------------------------------------------------


def data_file(workdir: Path, name: str) -> Path:
    """A copy in the work folder, so the event source is ``import:<name>``."""
    target = workdir / name
    shutil.copyfile(DATA / name, target)
    return target


def topic(db, slug: str = "yhteisovaikuttavuus", name: str = "Yhteisövaikuttavuus") -> int:
    return topics.add_topic(db, slug, name).id


def person(db, email: str) -> dict:
    row = subscribers.find(db, email)
    assert row is not None, email
    return row


def subs(db, email: str) -> dict[str, str]:
    sid = person(db, email)["id"]
    return {
        slug: status
        for slug, status in db.execute(
            "SELECT t.slug, s.status FROM subscriptions s JOIN topics t ON t.id = s.topic_id"
            " WHERE s.subscriber_id = ?",
            [sid],
        )
    }


def events(db, email: str) -> list[tuple[str, str | None, str]]:
    sid = person(db, email)["id"]
    return [
        tuple(row)
        for row in db.execute(
            "SELECT e.action, t.slug, e.source FROM events e"
            " LEFT JOIN topics t ON t.id = e.topic_id WHERE e.subscriber_id = ? ORDER BY e.id",
            [sid],
        )
    ]


def dump(db) -> list[str]:
    # The log of import runs records that an import ran (or was undone), not subscriber data.
    return [line for line in db.conn.iterdump() if not line.startswith('INSERT INTO "import_runs"')]


def import_json(cli, path: Path, *args: str) -> dict:
    return json.loads(cli.ok("subscribers", "import", str(path), *args, "--json").stdout)


def counts(report: dict) -> tuple[int, int, int, int, int, int]:
    keys = ("added", "updated", "unchanged", "duplicates", "suppressed")
    return (*(report[k] for k in keys), len(report["invalid"]))


# Import of real-shaped files ---------------------------------------------------------


@pytest.fixture(params=[importer.CHUNK, 1], ids=["one-chunk", "row-by-row"])
def chunked(request, monkeypatch: pytest.MonkeyPatch) -> int:
    """Runs a test with the normal chunk size and with every row in a chunk of its own, so
    duplicates, merges and failures across chunk boundaries are covered too."""
    monkeypatch.setattr(importer, "CHUNK", request.param)
    return request.param


def test_mailchimp_members_export(cli, db, workdir, chunked) -> None:
    topic(db)
    report = import_json(
        cli, data_file(workdir, "mailchimp_members.csv"), "--topic", "Yhteisövaikuttavuus"
    )
    assert counts(report) == (4, 0, 0, 0, 0, 1)
    assert report["invalid"] == [{"line": 7, "email": "", "error": "empty address"}]
    aino = person(db, "aino.virtanen@saatio.fi")
    # Local part as given, domain lower-cased; First + Last Name joined; default language.
    assert (aino["email"], aino["name"], aino["lang"], aino["status"]) == (
        "Aino.Virtanen@saatio.fi",
        "Aino Virtanen",
        "fi",
        "active",
    )
    assert person(db, "paivi@kunta.example.fi")["name"] == "Päivi"
    assert subs(db, "olivia.smith@example.org") == {"yhteisovaikuttavuus": "unconfirmed"}
    source = "import:mailchimp_members.csv"
    assert events(db, "erik.lindqvist@example.fi") == [
        ("create", None, source),
        ("subscribe", "yhteisovaikuttavuus", source),
    ]


def test_finnish_excel_windows_1252_semicolons(cli, db, workdir) -> None:
    topic(db)
    path = data_file(workdir, "excel_fi_cp1252.csv")
    assert "sähköposti".encode("cp1252") in path.read_bytes()  # really not UTF-8
    report = import_json(cli, path, "--topic", "yhteisovaikuttavuus", "--confirmed")
    assert counts(report) == (6, 0, 0, 0, 0, 1)
    assert report["invalid"] == [
        {
            "line": 3,
            "email": "Åsa.Öhman@förening.example.fi",
            "error": "non-ASCII local part: cannot be mailed (needs SMTPUTF8)",
        }
    ]
    got = {
        row["email"]: (row["name"], row["lang"])
        for row in db.query("SELECT email, name, lang FROM subscribers")
    }
    assert got == {
        "matti.meikalainen@yhdistys.example.fi": ("Matti Meikäläinen", "fi"),
        "jyrki@example.fi": ("Jyrki Mäkelä", "fi"),
        "sanna@example.fi": ("Sanna Ström", "sv"),
        "john@example.com": ("John Doe", "en"),
        "liisa@example.fi": ("Liisa Kärkkäinen", "fi"),
        "bjorn.ostman@förening.example.fi": ("Björn Östman", "sv"),  # IDNA domain kept
    }
    assert subs(db, "sanna@example.fi") == {"yhteisovaikuttavuus": "confirmed"}
    assert events(db, "john@example.com")[1] == (
        "confirm",
        "yhteisovaikuttavuus",
        "import:excel_fi_cp1252.csv",
    )


def test_utf8_bom_tab_delimited(cli, db, workdir) -> None:
    report = import_json(cli, data_file(workdir, "bom_utf8.csv"))
    assert counts(report) == (2, 0, 0, 0, 0, 0)
    assert (person(db, "kaisa@example.fi")["name"], person(db, "ville@example.fi")["lang"]) == (
        "Kaisa Niemi",
        "en",
    )
    assert subs(db, "kaisa@example.fi") == {}  # no --topic: people only


def test_mixed_invalid_rows_reported_with_line_numbers(cli, db, workdir) -> None:
    topic(db)
    report = import_json(cli, data_file(workdir, "mixed_invalid.csv"), "-t", "yhteisovaikuttavuus")
    assert counts(report) == (3, 0, 0, 0, 0, 5)
    by_line = {item["line"]: item for item in report["invalid"]}
    assert sorted(by_line) == [3, 4, 5, 6, 8]
    assert "period" in by_line[3]["error"]
    assert "two periods" in by_line[4]["error"]
    assert by_line[5]["error"] == "empty address"
    assert "@-sign" in by_line[6]["error"]
    assert by_line[8] == {
        "line": 8,
        "email": "rivin@example.fi\nvaihto@example.fi",
        "error": "line break in address",
    }
    # An unsupported language no longer rejects the person: the default, with a warning.
    assert report["warnings"] == [
        {
            "line": 10,
            "email": "kieli@example.fi",
            "error": "unsupported language 'de': the default is used",
        }
    ]
    assert person(db, "kieli@example.fi")["lang"] == "fi"
    assert person(db, "TRIMMED@example.fi")["email"] == "trimmed@example.fi"
    assert person(db, "trimmed@example.fi")["lang"] == "sv"
    stored = [r[0] for r in db.execute("SELECT email FROM subscribers ORDER BY id")]
    assert stored == ["hyva@example.fi", "kieli@example.fi", "trimmed@example.fi"]


def test_human_report_lists_invalid_lines_on_stderr(cli, db, workdir) -> None:
    topic(db)
    path = data_file(workdir, "mixed_invalid.csv")
    result = cli.ok("subscribers", "import", str(path), "-t", "yhteisovaikuttavuus")
    assert "3 added, 0 updated, 0 unchanged, 0 duplicates, 0 suppressed, 5 invalid" in result.stdout
    assert "  columns: email <- e-mail; name <- nimi; lang <- lang\n" in result.stdout
    assert "line 4: 'two..dots@example.fi'" in result.stderr
    assert "line 10: warning: unsupported language 'de': the default is used" in result.stderr
    # Imported without --confirmed: said plainly, with what to do next.
    assert "warning: 3 people were imported unconfirmed: they get no newsletter" in result.stderr
    assert "--send-confirmation (safe to run again)" in result.stderr


def test_duplicates_differing_in_case_are_merged(cli, db, workdir, chunked) -> None:
    topic(db)
    path = data_file(workdir, "duplicates_case.csv")
    report = import_json(cli, path, "-t", "yhteisovaikuttavuus")
    assert counts(report) == (2, 0, 0, 3, 0, 0)
    rows = list(db.query("SELECT email, name, lang FROM subscribers ORDER BY id"))
    # First spelling kept; the first row without a name is filled from the next one.
    assert rows == [
        {"email": "Maija.Mehilainen@example.fi", "name": "Maija Mehiläinen", "lang": "fi"},
        {"email": "pekka@example.fi", "name": "Pekka Pouta", "lang": "fi"},
    ]
    # Against the database: the same people again are unchanged, whatever the case.
    assert counts(import_json(cli, path, "-t", "yhteisovaikuttavuus")) == (0, 0, 2, 3, 0, 0)


def test_cr_lf_injection_never_stored(cli, db, workdir) -> None:
    report = import_json(cli, data_file(workdir, "injection.csv"))
    assert counts(report) == (2, 0, 0, 0, 0, 2)
    assert [i["error"] for i in report["invalid"]] == ["line break in address"] * 2
    assert [i["line"] for i in report["invalid"]] == [2, 4]
    names = [r[0] for r in db.execute("SELECT name FROM subscribers ORDER BY id")]
    assert names == ["Eve Bcc: everyone@example.com", "Nolla Merkki [31m"]
    everything = "\n".join(dump(db))
    assert "victim@" not in everything and "evil@" not in everything
    for name in names:
        assert not any(ord(ch) < 32 for ch in name)


def test_reimport_is_idempotent(cli, db, workdir, chunked) -> None:
    topic(db)
    path = data_file(workdir, "excel_fi_cp1252.csv")
    import_json(cli, path, "-t", "yhteisovaikuttavuus")
    before = dump(db)
    report = import_json(cli, path, "-t", "yhteisovaikuttavuus")
    assert counts(report) == (0, 0, 6, 0, 0, 1)
    assert dump(db) == before  # not even an event


def test_update_name_and_language_and_confirm_but_never_demote(cli, db, workdir, chunked) -> None:
    tid = topic(db)
    subscribers.add(
        db, "jyrki@example.fi", name="J. M.", lang="sv", topic_ids=[tid], status="unconfirmed"
    )
    subscribers.add(db, "sanna@example.fi", name="Sanna Ström", lang="sv", topic_ids=[tid])
    path = data_file(workdir, "excel_fi_cp1252.csv")
    # --confirmed upgrades Jyrki's unconfirmed subscription and fixes his name and language.
    report = import_json(cli, path, "-t", "yhteisovaikuttavuus", "--confirmed")
    assert counts(report) == (4, 1, 1, 0, 0, 1)
    jyrki = person(db, "jyrki@example.fi")
    assert (jyrki["name"], jyrki["lang"]) == ("Jyrki Mäkelä", "fi")
    assert subs(db, "jyrki@example.fi") == {"yhteisovaikuttavuus": "confirmed"}
    source = "import:excel_fi_cp1252.csv"
    assert events(db, "jyrki@example.fi")[-2:] == [
        ("update", None, source),
        ("confirm", "yhteisovaikuttavuus", source),
    ]
    # Without --confirmed an import never turns a confirmed subscription back.
    assert counts(import_json(cli, path, "-t", "yhteisovaikuttavuus")) == (0, 0, 6, 0, 0, 1)
    assert subs(db, "sanna@example.fi") == {"yhteisovaikuttavuus": "confirmed"}


def test_unsubscribed_and_erased_people_are_not_resubscribed(cli, db, workdir, chunked) -> None:
    tid = topic(db)
    other = topic(db, "hyvinvointi", "Hyvinvointi")
    jyrki = subscribers.add(db, "jyrki@example.fi", name="Jyrki Mäkelä", topic_ids=[tid, other])
    subscribers.unsubscribe(db, jyrki.subscriber_id, tid, "web")
    subscribers.add(db, "Sanna@Example.fi", name="Sanna Ström", lang="sv", topic_ids=[tid])
    subscribers.erase(db, "sanna@example.fi")
    path = data_file(workdir, "excel_fi_cp1252.csv")
    report = import_json(cli, path, "-t", "yhteisovaikuttavuus", "-t", "hyvinvointi", "--confirmed")
    assert counts(report) == (4, 0, 0, 0, 2, 1)
    assert subscribers.find(db, "sanna@example.fi") is None
    assert subs(db, "jyrki@example.fi") == {
        "yhteisovaikuttavuus": "unsubscribed",
        "hyvinvointi": "confirmed",
    }
    # Only an explicit staff override lifts the erasure suppression.
    refused = cli(
        "subscribers", "add", "sanna@example.fi", "--topic", "yhteisovaikuttavuus", "--confirmed"
    )
    assert refused.exit_code == 1 and "--override-opt-out" in refused.stderr
    assert subscribers.is_suppressed(db, "sanna@example.fi")
    cli.ok(
        "subscribers", "add", "sanna@example.fi", "--topic", "yhteisovaikuttavuus", "--confirmed",
        "--override-opt-out",
    )  # fmt: skip
    assert not subscribers.is_suppressed(db, "sanna@example.fi")
    assert counts(import_json(cli, path, "-t", "yhteisovaikuttavuus")) == (0, 1, 4, 0, 1, 1)


def test_dry_run_writes_nothing_and_reports_the_same(cli, db, workdir, chunked) -> None:
    tid = topic(db)
    subscribers.add(db, "pekka@example.fi", topic_ids=[tid], status="unconfirmed")
    path = data_file(workdir, "duplicates_case.csv")
    before = dump(db)
    dry = import_json(cli, path, "-t", "yhteisovaikuttavuus", "--confirmed", "--dry-run")
    assert dump(db) == before
    assert counts(dry) == (1, 1, 0, 3, 0, 0)
    human = cli.ok("subscribers", "import", str(path), "--dry-run")
    assert human.stdout.startswith("dry run, nothing written:")
    assert dump(db) == before
    real = import_json(cli, path, "-t", "yhteisovaikuttavuus", "--confirmed")
    assert real == dry
    assert dump(db) != before


def fail_on_johns_first_event(db) -> None:
    """A write that fails late in the import of excel_fi_cp1252.csv."""
    db.execute(
        "CREATE TRIGGER refuse_john BEFORE INSERT ON events WHEN NEW.subscriber_id ="
        " (SELECT id FROM subscribers WHERE email = 'john@example.com')"
        " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )


def test_import_is_one_transaction(cli, db, workdir, chunked) -> None:
    """A failure on the last row written leaves the database exactly as it was."""
    tid = topic(db)
    subscribers.add(db, "jyrki@example.fi", name="Vanha Nimi", topic_ids=[tid])
    # Fails on John's first event: by then every person, update and subscription is written.
    fail_on_johns_first_event(db)
    before = dump(db)
    result = cli(
        "subscribers",
        "import",
        str(data_file(workdir, "excel_fi_cp1252.csv")),
        "-t",
        "yhteisovaikuttavuus",
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: import of excel_fi_cp1252.csv failed, nothing was")
    assert "disk on fire" in result.stderr
    assert dump(db) == before


def test_an_undone_import_puts_back_each_persons_own_time_stamp(cli, db, workdir, chunked):
    # The import writes its own time into ``updated``; undone, the person's earlier time is
    # back (seconds apart, the two differ: the database would not be as it was).
    tid = topic(db)
    subscribers.add(db, "jyrki@example.fi", name="Vanha Nimi", topic_ids=[tid])
    db.execute("UPDATE subscribers SET updated = '2020-01-02T03:04:05+00:00'")
    fail_on_johns_first_event(db)
    before = dump(db)
    result = cli(
        "subscribers", "import", str(data_file(workdir, "excel_fi_cp1252.csv")),
        "-t", "yhteisovaikuttavuus",
    )  # fmt: skip
    assert result.exit_code == 1
    stamp = db.execute("SELECT updated FROM subscribers WHERE email = 'jyrki@example.fi'")
    assert stamp.fetchone()[0] == "2020-01-02T03:04:05+00:00"
    assert dump(db) == before


def test_a_broken_last_line_leaves_the_database_unchanged(cli, db, workdir, chunked) -> None:
    path = workdir / "rikki.csv"
    lines = ["email,name"] + [f"lukija{n}@example.fi,Lukija {n}" for n in range(5)]
    lines.append('viimeinen@example.fi,"' + "x" * 200_000 + '"')  # over csv's field limit
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = dump(db)
    result = cli("subscribers", "import", "rikki.csv")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: rikki.csv: line 7: field larger than field limit")
    assert dump(db) == before


def test_duplicates_across_chunks(db, workdir, chunked) -> None:
    tid = topic(db)
    subscribers.add(db, "vanha@example.fi", name="Vanha Nimi", topic_ids=[tid])
    subscribers.add(db, "poistettu@example.fi")
    subscribers.erase(db, "poistettu@example.fi")
    path = workdir / "toistot.csv"
    path.write_text(
        "email,name,lang\n"
        "uusi@example.fi,,sv\n"
        "vanha@example.fi,Uusi Nimi,\n"
        "poistettu@example.fi,,\n"
        "UUSI@example.fi,Uusi Ihminen,en\n"  # fills the missing name, not the language
        "Vanha@example.fi,Kolmas Nimi,\n"  # the first row for a known person wins
        "POISTETTU@example.fi,,\n",
        encoding="utf-8",
    )
    report = importer.import_file(db, path, topic_ids=[tid])
    assert (report.added, report.updated, report.duplicates, report.suppressed) == (1, 1, 3, 1)
    assert (person(db, "uusi@example.fi")["name"], person(db, "uusi@example.fi")["lang"]) == (
        "Uusi Ihminen",
        "sv",
    )
    assert person(db, "vanha@example.fi")["name"] == "Uusi Nimi"
    assert subscribers.find(db, "poistettu@example.fi") is None
    assert [e[0] for e in events(db, "uusi@example.fi")] == ["create", "subscribe"]


def test_a_later_duplicate_never_renames_a_known_person(db, workdir, chunked) -> None:
    """The outcome must not depend on whether the two rows fall in one chunk or two."""
    subscribers.add(db, "vanha@example.fi", name="Vanha Nimi")
    path = workdir / "toisto.csv"
    path.write_text(
        "email,name\n"
        "vanha@example.fi,\n"
        "VANHA@example.fi,Uusi Nimi\n"
        "uusi@example.fi,\n"
        "uusi@example.fi,\n"
        "Uusi@example.fi,Ensimmäinen Nimi\n"
        "uusi@example.fi,Toinen Nimi\n",
        encoding="utf-8",
    )
    report = importer.import_file(db, path)
    assert (report.added, report.updated, report.unchanged, report.duplicates) == (1, 0, 1, 4)
    assert person(db, "vanha@example.fi")["name"] == "Vanha Nimi"
    assert person(db, "uusi@example.fi")["name"] == "Ensimmäinen Nimi"
    assert [e[0] for e in events(db, "vanha@example.fi")] == ["create"]


def test_import_file_errors(cli, workdir) -> None:
    (workdir / "nohead.csv").write_text("nimi;puhelin\nMatti;040\n", encoding="utf-8")
    result = cli("subscribers", "import", "nohead.csv")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no e-mail column")
    assert "nimi, puhelin" in result.stderr
    missing = cli("subscribers", "import", "missing.csv")
    assert (missing.exit_code, missing.stderr) == (1, "error: missing.csv: no such file\n")
    unknown = cli("subscribers", "import", str(data_file(workdir, "bom_utf8.csv")), "-t", "nope")
    assert unknown.exit_code == 1 and "unknown topic 'nope'" in unknown.stderr


def test_mailchimp_unsubscribed_export_arrives_suppressed(cli, db, workdir) -> None:
    """Mailchimp exports the people who left in a file of their own: importing it never
    subscribes them. Known people are unsubscribed, unknown ones kept as a hash only."""
    tid = topic(db)
    subscribers.add(db, "tuttu@example.fi", topic_ids=[tid])
    (workdir / "unsubscribed_members.csv").write_text(
        '"Email Address","First Name","Last Name","UNSUB_TIME","UNSUB_CAMPAIGN_TITLE"\n'
        '"lahti@example.fi","Lähtijä","Lahti","2025-03-01 10:00:00","Maaliskuu"\n'
        '"tuttu@example.fi","Tuttu","Tyyppi","2025-03-02 10:00:00","Maaliskuu"\n',
        encoding="utf-8",
    )
    report = import_json(
        cli, workdir / "unsubscribed_members.csv", "-t", "yhteisovaikuttavuus", "--confirmed"
    )
    assert counts(report) == (0, 0, 0, 0, 2, 0)
    assert report["suppressed_by_reason"] == {"unsubscribed": 2}
    assert subscribers.find(db, "lahti@example.fi") is None
    assert subscribers.is_suppressed(db, "lahti@example.fi")
    assert subs(db, "tuttu@example.fi") == {"yhteisovaikuttavuus": "unsubscribed"}
    assert list(subscribers.recipients(db, [tid])) == []


def test_bytes_neither_utf8_nor_windows_1252_are_one_line_error(cli, db, workdir) -> None:
    # 0x81 is undefined in Windows-1252; it used to escape as a traceback.
    (workdir / "outo.csv").write_bytes(b"email,name\r\nx@example.fi,A\x81B\r\n")
    result = cli("subscribers", "import", "outo.csv")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: outo.csv: byte 0x81 at offset 26 is neither UTF-8 nor Windows-1252:"
        " save the file as CSV UTF-8\n"
    )
    assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 0


def test_excel_sep_hint_line(db, workdir) -> None:
    path = workdir / "excel.csv"
    text = "sep=;\r\nE-mail;Etunimi;Sukunimi\r\neka@example.fi;Eeva;Ek\r\nrikki;;\r\n"
    path.write_bytes(text.encode("cp1252"))
    report = importer.import_file(db, path)
    assert (report.added, [i.line for i in report.invalid]) == (1, [4])
    assert person(db, "eka@example.fi")["name"] == "Eeva Ek"


def test_headerless_list_of_addresses(db, workdir) -> None:
    path = workdir / "osoitteet.txt"
    path.write_text("eka@example.fi\ntoka@example.fi\nrikki@\n", encoding="utf-8")
    report = importer.import_file(db, path)
    assert (report.added, [i.line for i in report.invalid]) == (2, [3])


ADDRESSES = [
    "A@X.FI", "mixed.Case@Example.FI", "a!#$%&'*+-/=?^_`{|}~@example.fi", "a+tag@example.fi",
    "a..b@example.fi", ".a@example.fi", "a.@example.fi", "a@example", "a@example..fi",
    "a@-example.fi", "a@example-.fi", "a@exa_mple.fi", "a b@example.fi", "a@@example.fi",
    "a@example.fi.", "a@123.fi", "a@example.invalid", "a@localhost", "a@xn--frening-n4a.fi",
    "a(comment)@example.fi", "x" * 64 + "@example.fi", "x" * 65 + "@example.fi",
    "a@" + "x" * 63 + ".fi", "a@" + "x" * 64 + ".fi", "a@" + "b." * 120 + "fi",
    '"quoted"@example.fi', "a@[192.0.2.1]", "åsa@example.fi", "a@förening.fi", "", "   ",
    "a\r\n@example.fi", "a@example.fi\n", "@example.fi", "a@", "a@exa%mple.fi",
    "a.b-c_d@example.fi", "-@example.fi", "a=@example.fi", "{x}|y@example.fi", "'@example.fi",
    "a.b.c.d.e@example.fi", "x" * 63 + ".@example.fi", "a,b@example.fi", "a;b@example.fi",
    "a:b@example.fi", "a<b@example.fi", "a>b@example.fi", "a)b@example.fi", "a\tb@example.fi",
]  # fmt: skip


def test_address_checker_agrees_with_normalize_email() -> None:
    check = importer.AddressChecker()

    def outcome(function, raw: str) -> str:
        try:
            return "ok " + function(raw)
        except NewsletterError as exc:
            return f"{type(exc).__name__}: {exc}"

    for _ in range(2):  # the second round answers domains from the cache
        for raw in ADDRESSES:
            assert outcome(check, raw) == outcome(subscribers.normalize_email, raw), raw
    assert outcome(check, "a@example..fi").startswith("InvalidEmail")


def test_parse_lang_and_clean_name() -> None:
    assert [importer.parse_lang(v) for v in ("FI", "sv-FI", "svenska", "English", " ")] == [
        "fi",
        "sv",
        "sv",
        "en",
        None,
    ]
    with pytest.raises(NewsletterError):
        importer.parse_lang("klingon")
    assert importer.clean_name("  Anna-Liisa\u2028\tÖberg \r\n") == "Anna-Liisa Öberg"


# Sample data -------------------------------------------------------------------------


def test_bundled_sample_imports_as_the_demo_does(cli, db) -> None:
    topic(db)
    report = import_json(cli, SAMPLE, "--topic", "Yhteisövaikuttavuus", "--confirmed")
    assert report["added"] == 12
    assert (report["duplicates"], len(report["invalid"])) == (1, 1)
    langs = {r[0] for r in db.execute("SELECT DISTINCT lang FROM subscribers")}
    assert langs == {"fi", "sv", "en"}
    assert subscribers.count_recipients(db, [topics.resolve(db, "yhteisovaikuttavuus").id]) == 12


# Add, unsubscribe, list, show --------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["add", "import", "export", "list", "show", "unsubscribe", "remove"]
)
def test_every_command_has_help_with_an_example(cli, command) -> None:
    text = cli.ok("subscribers", command, "--help").stdout
    assert "Example: newsletter subscribers " + command in " ".join(text.split())


def test_add_defaults_to_unconfirmed(cli, db) -> None:
    topic(db)
    out = cli.ok(
        "subscribers",
        "add",
        "Maija@Example.FI",
        "--name",
        "Maija Mäkelä",
        "--lang",
        "sv",
        "--topic",
        "yhteisovaikuttavuus",
    ).stdout
    assert out == "added: Maija@example.fi (yhteisovaikuttavuus)\n"
    assert subs(db, "maija@example.fi") == {"yhteisovaikuttavuus": "unconfirmed"}
    out = cli.ok(
        "subscribers", "add", "maija@example.fi", "-t", "yhteisovaikuttavuus", "--confirmed"
    ).stdout
    assert out.startswith("updated: ")
    assert subs(db, "maija@example.fi") == {"yhteisovaikuttavuus": "confirmed"}
    again = cli.ok(
        "subscribers", "add", "maija@example.fi", "-t", "yhteisovaikuttavuus", "--confirmed"
    )
    assert again.stdout.startswith("unchanged: ")
    # A routine add without --confirmed never demotes a confirmed subscription.
    plain = cli.ok("subscribers", "add", "maija@example.fi", "-t", "yhteisovaikuttavuus")
    assert plain.stdout.startswith("unchanged: ")
    assert subs(db, "maija@example.fi") == {"yhteisovaikuttavuus": "confirmed"}
    # Someone who left is brought back by staff only with the explicit override.
    cli.ok("subscribers", "unsubscribe", "maija@example.fi")
    assert cli("subscribers", "add", "maija@example.fi", "-t", "yhteisovaikuttavuus").exit_code == 1
    assert subs(db, "maija@example.fi") == {"yhteisovaikuttavuus": "unsubscribed"}
    cli.ok(
        "subscribers", "add", "maija@example.fi", "-t", "yhteisovaikuttavuus", "--override-opt-out"
    )
    assert subs(db, "maija@example.fi") == {"yhteisovaikuttavuus": "unconfirmed"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("kaksi..pistetta@example.fi",), "error: An email address cannot have two periods"),
        (("ok@example.fi", "--lang", "de"), "error: unknown language 'de'"),
    ],
)
def test_add_rejects_bad_input(cli, db, args, message) -> None:
    result = cli("subscribers", "add", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr
    assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 0


def usage_error(result) -> str:
    """The usage error's text on one line, without the box click/rich draws around it."""
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.translate(str.maketrans("│╭╮╰╯─", "      ")).split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("add", "ok@example.fi", "--confirmed", "--send-confirmation"),
            "Invalid value for '--send-confirmation': cannot be used with --confirmed",
        ),
        (
            ("import", "members.csv", "--send-confirmation", "--confirmed"),
            "Invalid value for '--send-confirmation': cannot be used with --confirmed",
        ),
        (("list", "--status", "weird"), "Invalid value for '--status': 'weird' is not one of"),
        (("export", "--status", "weird"), "Invalid value for '--status': 'weird' is not one of"),
        (("export", "--format", "xml"), "Invalid value for '--format': 'xml' is not one of"),
    ],
)
def test_invalid_option_values_are_usage_errors(cli, db, workdir, smtp_sink, args, message):
    topic(db)
    (workdir / "members.csv").write_text("email\nuusi@example.fi\n", encoding="utf-8")
    env = {"NEWSLETTER_SMTP_HOST": smtp_sink.host, "NEWSLETTER_SMTP_PORT": str(smtp_sink.port)}
    result = cli("subscribers", *args, env=env)
    assert message in usage_error(result)
    assert result.stdout == ""
    assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 0
    assert smtp_sink.messages == []


def test_add_cleans_control_characters_from_names_like_import(cli, db) -> None:
    cli.ok("subscribers", "add", "nul@example.fi", "--name", "Nolla\x00Merkki\x1b[31m\r\nBcc: x")
    assert person(db, "nul@example.fi")["name"] == "Nolla Merkki [31m Bcc: x"
    assert importer.clean_name is subscribers.clean_name  # one rule for both ways in


def test_staff_add_lifts_the_suppression_of_an_unconfirmed_web_sign_up(cli, db) -> None:
    tid = topic(db)
    subscribers.add(db, "palaaja@example.fi", topic_ids=[tid])
    subscribers.erase(db, "palaaja@example.fi")
    # Signs up again on the web: a row exists, the suppression stays until confirmation.
    subscribers.add(
        db, "palaaja@example.fi", topic_ids=[tid], status="unconfirmed", lift_suppression_=False
    )
    assert subscribers.is_suppressed(db, "palaaja@example.fi")
    out = cli.ok(
        "subscribers", "add", "palaaja@example.fi", "-t", "yhteisovaikuttavuus",
        "--override-opt-out",
    )  # fmt: skip
    assert out.stdout.startswith("updated: ")
    assert not subscribers.is_suppressed(db, "palaaja@example.fi")


def test_unsubscribe_one_topic_or_all(cli, db) -> None:
    a, b = topic(db), topic(db, "hyvinvointi", "Hyvinvointi")
    subscribers.add(db, "liisa@example.fi", topic_ids=[a, b])
    out = cli.ok("subscribers", "unsubscribe", "LIISA@example.fi", "--topic", "Hyvinvointi").stdout
    assert out == "unsubscribed liisa@example.fi from hyvinvointi (1 changed)\n"
    assert subs(db, "liisa@example.fi") == {
        "yhteisovaikuttavuus": "confirmed",
        "hyvinvointi": "unsubscribed",
    }
    cli.ok("subscribers", "unsubscribe", "liisa@example.fi")
    assert set(subs(db, "liisa@example.fi").values()) == {"unsubscribed"}
    assert events(db, "liisa@example.fi")[-3:] == [
        ("unsubscribe", "hyvinvointi", "cli"),
        ("unsubscribe", "yhteisovaikuttavuus", "cli"),
        ("unsubscribe-all", None, "cli"),  # also the topics made later
    ]
    assert cli("subscribers", "unsubscribe", "nobody@example.fi").exit_code == 1


def test_unsubscribe_waits_for_another_writer(cli, db, settings) -> None:
    """The web server writing at the same moment delays a CLI unsubscribe, never breaks it."""
    tid = topic(db)
    subscribers.add(db, "liisa@example.fi", topic_ids=[tid])
    holding = threading.Event()

    def other_writer() -> None:
        other = sqlite3.connect(str(settings.db), timeout=30, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO topics (slug, name, created) VALUES ('muu', 'Muu', 'x')")
        holding.set()
        time.sleep(0.5)
        other.execute("COMMIT")
        other.close()

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert holding.wait(10)
    result = cli("subscribers", "unsubscribe", "liisa@example.fi")
    writer.join(10)
    assert result.exit_code == 0, result.stderr
    assert subs(db, "liisa@example.fi") == {"yhteisovaikuttavuus": "unsubscribed"}
    assert db.execute("SELECT COUNT(*) FROM topics WHERE slug = 'muu'").fetchone()[0] == 1


def test_list_filters(cli, db) -> None:
    a, b = topic(db), topic(db, "hyvinvointi", "Hyvinvointi")
    subscribers.add(db, "a@example.fi", name="Aa", topic_ids=[a])
    subscribers.add(db, "b@example.fi", name="Bb", topic_ids=[b], status="unconfirmed")
    c = subscribers.add(db, "c@example.fi", name="Cc", topic_ids=[a, b])
    subscribers.set_status(db, c.subscriber_id, "bounced", "bounce")

    def emails(*args: str) -> list[str]:
        rows = json.loads(cli.ok("subscribers", "list", *args, "--json").stdout)
        return [row["email"] for row in rows]

    assert emails() == ["a@example.fi", "b@example.fi", "c@example.fi"]
    assert emails("--topic", "yhteisovaikuttavuus") == ["a@example.fi", "c@example.fi"]
    assert emails("--status", "bounced") == ["c@example.fi"]
    assert emails("--status", "unconfirmed") == ["b@example.fi"]
    assert emails("--topic", "hyvinvointi", "--status", "confirmed") == ["c@example.fi"]
    rows = json.loads(cli.ok("subscribers", "list", "--json").stdout)
    assert rows[2]["subscriptions"] == {
        "hyvinvointi": "confirmed",
        "yhteisovaikuttavuus": "confirmed",
    }
    text = cli.ok("subscribers", "list", "--status", "unconfirmed").stdout
    assert "b@example.fi" in text and "hyvinvointi:unconfirmed" in text and "a@example" not in text
    bad = usage_error(cli("subscribers", "list", "--status", "happy"))
    assert "Invalid value for '--status': 'happy' is not one of active, bounced" in bad


def test_show_json_is_everything_held(cli, db, workdir) -> None:
    topic(db)
    import_json(cli, data_file(workdir, "excel_fi_cp1252.csv"), "-t", "yhteisovaikuttavuus")
    cli.ok("subscribers", "unsubscribe", "jyrki@example.fi")
    data = json.loads(cli.ok("subscribers", "show", "JYRKI@example.fi", "--json").stdout)
    assert list(data) == [
        "email",
        "name",
        "lang",
        "status",
        "created",
        "unsubscribed_all",
        "attributes",
        "subscriptions",
        "events",
    ]
    assert data["unsubscribed_all"] == data["events"][-1]["time"]
    assert (data["email"], data["name"], data["lang"], data["status"], data["attributes"]) == (
        "jyrki@example.fi",
        "Jyrki Mäkelä",
        "fi",
        "active",
        {},
    )
    assert [(s["topic"], s["status"]) for s in data["subscriptions"]] == [
        ("yhteisovaikuttavuus", "unsubscribed")
    ]
    assert [(e["action"], e["topic"], e["source"]) for e in data["events"]] == [
        ("create", None, "import:excel_fi_cp1252.csv"),
        ("subscribe", "yhteisovaikuttavuus", "import:excel_fi_cp1252.csv"),
        ("unsubscribe", "yhteisovaikuttavuus", "cli"),
        ("unsubscribe-all", None, "cli"),
    ]
    assert all(set(e) == {"time", "action", "topic", "source"} for e in data["events"])
    assert data["created"] == data["events"][0]["time"]
    text = cli.ok("subscribers", "show", "jyrki@example.fi").stdout
    assert "Jyrki Mäkelä" in text and "import:excel_fi_cp1252.csv" in text
    missing = cli("subscribers", "show", "ei.ole@example.fi", "--json")
    assert (missing.exit_code, missing.stdout) == (1, "")
    assert missing.stderr == "error: no subscriber 'ei.ole@example.fi'\n"


# GDPR erasure ------------------------------------------------------------------------


def test_remove_leaves_no_readable_trace_in_the_file(cli, db, workdir) -> None:
    tid = topic(db)
    for n in range(300):  # neighbours on the same and other pages
        subscribers.add(db, f"naapuri{n}@example.fi", name=f"Naapuri {n}", topic_ids=[tid])
    secret_mail, secret_name = "Salainen.Henkilo@Piilo.example.fi", "Salaisuus Piilonen"
    subscribers.add(db, secret_mail, name=secret_name, topic_ids=[tid])
    subscribers.unsubscribe(db, person(db, secret_mail)["id"], tid, "web")
    files = [workdir / "subscribers.db", workdir / "subscribers.db-wal"]
    before = b"".join(f.read_bytes() for f in files if f.exists())
    assert b"Salainen.Henkilo" in before  # the check below can fail

    out = cli.ok("subscribers", "remove", "salainen.henkilo@piilo.example.fi").stdout
    assert out.startswith("erased")
    assert subscribers.find(db, secret_mail) is None
    assert subscribers.is_suppressed(db, secret_mail)
    raw = b"".join(f.read_bytes() for f in files if f.exists())
    for needle in (b"Salainen", b"salainen", b"piilo.example", b"Salaisuus", b"Piilonen"):
        assert needle not in raw, needle
    assert b"naapuri299@example.fi" in raw  # the others are still there
    # Events went with the person; the neighbours' did not.
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 600
    assert cli("subscribers", "remove", secret_mail).exit_code == 1


def test_remove_clears_smtp_replies_that_quote_the_address(cli, db, workdir) -> None:
    tid = topic(db)
    gone = subscribers.add(db, "poistuva@piilo.example.fi", topic_ids=[tid]).subscriber_id
    stays = subscribers.add(db, "jaava@example.fi", topic_ids=[tid]).subscriber_id
    stamp = "2025-09-01T08:00:00+00:00"
    edition = db.execute(
        "INSERT INTO editions (subject, lang, template, html, text, created, updated)"
        " VALUES ('Syyskuu', 'fi', 'default', '<p></p>', '', ?, ?)",
        [stamp, stamp],
    ).lastrowid
    for sid, reply in (
        (gone, "550 5.1.1 <poistuva@piilo.example.fi>: Recipient address rejected"),
        (stays, "250 2.0.0 <jaava@example.fi> queued as 1A2B"),
    ):
        db.execute(
            "INSERT INTO deliveries (edition_id, subscriber_id, topic_id, status, last_reply,"
            " created, updated) VALUES (?, ?, ?, 'failed', ?, ?, ?)",
            [edition, sid, tid, reply, stamp, stamp],
        )
    db.conn.commit()
    cli.ok("subscribers", "remove", "poistuva@piilo.example.fi")
    raw = b"".join(p.read_bytes() for p in workdir.glob("subscribers.db*"))
    assert b"poistuva" not in raw and b"piilo.example" not in raw
    rows = db.execute(
        "SELECT subscriber_id, status, last_reply FROM deliveries ORDER BY id"
    ).fetchall()
    # The edition still counts both deliveries; only the other person's reply is kept.
    assert rows == [
        (None, "failed", None),
        (stays, "failed", "250 2.0.0 <jaava@example.fi> queued as 1A2B"),
    ]


def test_an_erased_persons_id_is_never_given_again(cli, db, workdir) -> None:
    """Old mails carry the id in signed unsubscribe and preferences links: given to someone
    new, they would open that stranger's preferences."""
    tid = topic(db)
    subscribers.add(db, "eka@example.fi", topic_ids=[tid])
    gone = subscribers.add(db, "viimeinen@example.fi", topic_ids=[tid]).subscriber_id
    cli.ok("subscribers", "remove", "viimeinen@example.fi")
    added = subscribers.add(db, "uusi@example.fi", topic_ids=[tid]).subscriber_id
    cli.ok("subscribers", "remove", "uusi@example.fi")
    (workdir / "lisaa.csv").write_text("email\ntuotu@example.fi\n", encoding="utf-8")
    importer.import_file(db, workdir / "lisaa.csv")
    imported_id = person(db, "tuotu@example.fi")["id"]
    assert (gone, added, imported_id) == (2, 3, 4)
    assert subscribers.get(db, gone) is None


def test_flush_wal_reports_a_reader_that_keeps_erased_pages(db, workdir) -> None:
    subscribers.add(db, "piilossa@example.fi", name="Piilo Tunnus")
    reader = sqlite3.connect(workdir / "subscribers.db")
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM subscribers").fetchone() == (1,)  # snapshot
    started = time.monotonic()
    assert not subscribers.erase(db, "piilossa@example.fi")  # it tells, it does not hang
    assert time.monotonic() - started < 10  # a web request must not wait out 30 s
    assert not subscribers.flush_wal(db, attempts=2, pause=0.05)
    assert b"Piilo Tunnus" in (workdir / "subscribers.db-wal").read_bytes()
    reader.close()
    assert subscribers.flush_wal(db)
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000  # restored
    raw = b"".join(p.read_bytes() for p in workdir.glob("subscribers.db*"))
    assert b"Piilo Tunnus" not in raw and b"piilossa" not in raw


# Export ------------------------------------------------------------------------------


def _export_world(db) -> tuple[int, int]:
    a, b = topic(db), topic(db, "hyvinvointi", "Hyvinvointi")
    subscribers.add(db, "eka@example.fi", name="Eka Ensimmäinen", topic_ids=[a, b])
    subscribers.add(db, "toka@example.fi", name='=HYPERLINK("http://x")', lang="sv", topic_ids=[a])
    subscribers.add(db, "odottaa@example.fi", topic_ids=[a], status="unconfirmed")
    gone = subscribers.add(db, "lahti@example.fi", topic_ids=[a])
    subscribers.unsubscribe(db, gone.subscriber_id, a, "web")
    bounced = subscribers.add(db, "pomppi@example.fi", topic_ids=[a])
    subscribers.set_status(db, bounced.subscriber_id, "bounced", "bounce")
    subscribers.add(db, "vain.toinen@example.fi", lang="en", topic_ids=[b])
    # Names that need CSV quoting; a line break can only come from old data.
    subscribers.add(db, "lainaus@example.fi", name='Virtanen, "Aino"', topic_ids=[b])
    old = subscribers.add(db, "vanha@example.fi", topic_ids=[b])
    db.execute(
        "UPDATE subscribers SET name = ? WHERE id = ?", ["Rivi\r\nvaihto", old.subscriber_id]
    )
    return a, b


def test_export_topic_is_exactly_the_recipients(cli, db) -> None:
    a, _ = _export_world(db)
    out = cli.ok("subscribers", "export", "--topic", "Yhteisövaikuttavuus").stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == [
        "email", "name", "lang", "status", "topics", "unsubscribed_from", "attributes",
        "subscribed_at",
    ]  # fmt: skip
    wanted = [r.email for r in subscribers.recipients(db, [a])]
    assert wanted == ["eka@example.fi", "toka@example.fi"]
    assert [r[0] for r in rows[1:]] == wanted
    eka = rows[1]
    assert eka[1:5] == ["Eka Ensimmäinen", "fi", "active", "hyvinvointi;yhteisovaikuttavuus"]
    confirmed_at = db.execute(
        "SELECT updated FROM subscriptions WHERE topic_id = ? AND subscriber_id = ?",
        [a, person(db, "eka@example.fi")["id"]],
    ).fetchone()[0]
    assert eka[7] == confirmed_at
    # A formula-like name is defused for spreadsheets...
    assert rows[2][1] == '\'=HYPERLINK("http://x")'


def test_export_csv_reimports_unchanged(cli, db, workdir) -> None:
    _export_world(db)
    cli.ok("subscribers", "export", "--topic", "yhteisovaikuttavuus", "-o", "out.csv")
    assert (workdir / "out.csv").read_bytes().startswith(b"email,name,lang,status,topics")
    assert not (workdir / "out.csv.partial").exists()
    report = import_json(cli, workdir / "out.csv")
    assert counts(report) == (0, 0, 2, 0, 0, 0)
    assert person(db, "toka@example.fi")["name"] == '=HYPERLINK("http://x")'


def test_export_all_and_by_status_and_json(cli, db, workdir) -> None:
    _export_world(db)
    raw = cli.ok("subscribers", "export").stdout_bytes.decode()  # .stdout turns CRLF into LF
    everyone = list(csv.DictReader(io.StringIO(raw, newline="")))
    assert [r["email"] for r in everyone] == [
        "eka@example.fi",
        "toka@example.fi",
        "odottaa@example.fi",
        "lahti@example.fi",
        "pomppi@example.fi",
        "vain.toinen@example.fi",
        "lainaus@example.fi",
        "vanha@example.fi",
    ]
    assert everyone[-2]["name"] == 'Virtanen, "Aino"'
    assert everyone[-1]["name"] == "Rivi\r\nvaihto"
    waiting = everyone[2]
    assert (waiting["topics"], waiting["subscribed_at"]) == ("", "")
    cli.ok("subscribers", "export", "--status", "bounced", "--format", "json", "-o", "b.json")
    data = json.loads((workdir / "b.json").read_text(encoding="utf-8"))
    assert [(d["email"], d["status"], d["topics"]) for d in data] == [
        ("pomppi@example.fi", "bounced", ["yhteisovaikuttavuus"])
    ]
    rows = json.loads(
        cli.ok("subscribers", "export", "-t", "hyvinvointi", "--format", "json").stdout
    )
    assert [(r["email"], r["lang"], r["topics"]) for r in rows] == [
        ("eka@example.fi", "fi", ["hyvinvointi", "yhteisovaikuttavuus"]),
        ("vain.toinen@example.fi", "en", ["hyvinvointi"]),
        ("lainaus@example.fi", "fi", ["hyvinvointi"]),
        ("vanha@example.fi", "fi", ["hyvinvointi"]),
    ]
    assert set(rows[0]) == set(export.HEADER)
    assert rows[0]["name"] == "Eka Ensimmäinen"  # JSON is not touched for spreadsheets
    assert (
        json.loads(
            cli.ok("subscribers", "export", "--status", "blocklisted", "--format", "json").stdout
        )
        == []
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--topic", "nope"), "error: unknown topic 'nope'"),
    ],
)
def test_export_rejects_bad_options(cli, db, args, message) -> None:
    topic(db)
    result = cli("subscribers", "export", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)


def test_export_streams_with_flat_memory(db) -> None:
    """20,000 rows pass through without being collected: a fetchall would hold them all."""
    tid = topic(db)
    stamp = "2025-01-01T00:00:00+00:00"
    db.conn.executemany(
        "INSERT INTO subscribers (id, email, email_key, name, created, updated)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                n,
                f"lukija{n}@example.fi",
                f"lukija{n}@example.fi",
                f"Lukija Numero {n}",
                stamp,
                stamp,
            )
            for n in range(1, 20_001)
        ],
    )
    db.conn.executemany(
        "INSERT INTO subscriptions VALUES (?, ?, 'confirmed', ?, ?)",
        [(n, tid, stamp, stamp) for n in range(1, 20_001)],
    )
    db.conn.commit()

    class Counter(io.TextIOBase):
        written = 0

        def write(self, text: str) -> int:
            self.written += len(text)
            return len(text)

    for writer in (export.write_csv, export.write_json):
        out = Counter()
        tracemalloc.start()
        writer(db, out, topic_id=tid)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert out.written > 20_000 * 40  # everything went through...
        assert peak < 1_000_000, (
            peak
        )  # ...while the 20,000 rows (>5 MB as tuples) never sat in memory


# Confirmation requests ---------------------------------------------------------------


def smtp_env(sink) -> dict[str, str]:
    return {"NEWSLETTER_SMTP_HOST": sink.host, "NEWSLETTER_SMTP_PORT": str(sink.port)}


def test_import_send_confirmation_mails_the_unconfirmed(cli, db, workdir, smtp_sink) -> None:
    tid = topic(db)
    subscribers.add(db, "pekka@example.fi", topic_ids=[tid])  # already confirmed: no mail
    path = data_file(workdir, "mixed_invalid.csv")
    args = ("subscribers", "import", str(path), "-t", "yhteisovaikuttavuus", "--send-confirmation")
    dry = cli.ok(*args, "--dry-run", env=smtp_env(smtp_sink))
    assert "dry run: would request confirmation from 3 people" in dry.stdout
    assert smtp_sink.messages == []
    subscribers.add(db, "hyva@example.fi", topic_ids=[tid])  # confirmed before the import
    result = cli.ok(*args, env=smtp_env(smtp_sink))
    assert "confirmation requests mailed: 2" in result.stdout
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == [
        "kieli@example.fi",
        "trimmed@example.fi",
    ]
    mail = next(m.message for m in smtp_sink.messages if m.rcpt_tos == ["trimmed@example.fi"])
    assert "Bekräfta" in str(mail["Subject"])  # in the person's language (sv)
    # Staff added them: the mail says who did, and not that they filled in the form.
    body = mail.get_body(("plain",)).get_content()
    assert "Testisäätiö lade till din adress" in body  # the cli fixture's organisation
    assert "formulär" not in body
    assert ("confirmation-sent", None, "cli") in events(db, "trimmed@example.fi")
    assert subs(db, "trimmed@example.fi") == {"yhteisovaikuttavuus": "unconfirmed"}
    assert subs(db, "hyva@example.fi") == {"yhteisovaikuttavuus": "confirmed"}


def test_send_confirmation_does_not_mail_a_still_valid_request_again(
    cli, db, workdir, smtp_sink
) -> None:
    topic(db)
    topic(db, "hyvinvointi", "Hyvinvointi")
    (workdir / "members.csv").write_text(
        "email,name\nanna@example.fi,Anna\nbertta@example.fi,Bertta\n", encoding="utf-8"
    )
    env = smtp_env(smtp_sink)
    args = ("subscribers", "import", "members.csv", "-t", "yhteisovaikuttavuus")
    first = cli.ok(*args, "--send-confirmation", env=env)
    assert "confirmation requests mailed: 2\n" in first.stdout
    assert len(smtp_sink.messages) == 2

    again = cli.ok(*args, "--send-confirmation", env=env)
    assert "confirmation requests mailed: 0 (2 already had a valid one)" in again.stdout
    added = cli.ok(
        "subscribers", "add", "anna@example.fi", "-t", "yhteisovaikuttavuus",
        "--send-confirmation", env=env,
    )  # fmt: skip
    assert "confirmation requests mailed: 0 (1 already had a valid one)" in added.stdout
    assert len(smtp_sink.messages) == 2

    # A topic the earlier mail did not name needs a new mail that names it.
    more = cli.ok(
        "subscribers", "add", "bertta@example.fi", "-t", "hyvinvointi", "--send-confirmation",
        "--json", env=env,
    )  # fmt: skip
    assert json.loads(more.stdout)["confirmations_sent"] == 1
    assert len(smtp_sink.to("bertta@example.fi")) == 2
    assert "Hyvinvointi" in smtp_sink.to("bertta@example.fi")[-1].message.get_body().get_content()

    # Once the links have expired (confirm_days, 7 in the test config), people are mailed again.
    with db.atomic():
        db.execute(
            "UPDATE events SET time = '2020-01-01T00:00:00+00:00'"
            " WHERE action = 'confirmation-sent'"
        )
    late = cli.ok(*args, "--send-confirmation", env=env)
    assert "confirmation requests mailed: 2\n" in late.stdout
    assert len(smtp_sink.messages) == 5


def test_send_confirmation_to_an_idn_domain(cli, db, workdir, smtp_sink) -> None:
    topic(db)
    cli.ok("subscribers", "add", "bjorn.ostman@förening.example.fi", "-t", "yhteisovaikuttavuus")
    result = cli(
        "subscribers",
        "add",
        "bjorn.ostman@förening.example.fi",
        "-t",
        "yhteisovaikuttavuus",
        "--send-confirmation",
        env=smtp_env(smtp_sink),
    )
    assert "confirmation requests mailed: 1" in result.stdout
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["bjorn.ostman@xn--frening-90a.example.fi"]]


def test_add_send_confirmation_keeps_a_crlf_name_out_of_headers(
    cli, db, workdir, smtp_sink
) -> None:
    topic(db)
    import_json(cli, data_file(workdir, "injection.csv"))
    result = cli.ok(
        "subscribers",
        "add",
        "eve@example.fi",
        "-t",
        "yhteisovaikuttavuus",
        "--send-confirmation",
        env=smtp_env(smtp_sink),
    )
    assert "confirmation requests mailed: 1" in result.stdout
    (mail,) = smtp_sink.to("eve@example.fi")
    assert mail.rcpt_tos == ["eve@example.fi"]
    message = mail.message
    assert message["Bcc"] is None
    assert [a.addr_spec for a in message["To"].addresses] == ["eve@example.fi"]
    header_block = mail.data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in header_block


def test_block_stops_mail_and_unblock_restores_it(cli, db, workdir) -> None:
    tid = topic(db)
    cli.ok("subscribers", "add", "Maija@Example.fi", "-t", "yhteisovaikuttavuus", "--confirmed")
    assert [r.email for r in subscribers.recipients(db, [tid])] == ["Maija@example.fi"]

    blocked = json.loads(cli.ok("subscribers", "block", "maija@example.fi", "--json").stdout)
    assert blocked == {"email": "Maija@example.fi", "status": "blocklisted", "changed": True}
    assert list(subscribers.recipients(db, [tid])) == []
    assert subs(db, "maija@example.fi") == {"yhteisovaikuttavuus": "confirmed"}  # kept
    again = json.loads(cli.ok("subscribers", "block", "maija@example.fi", "--json").stdout)
    assert again["changed"] is False

    cli.ok("subscribers", "unblock", "maija@example.fi")
    assert [r.email for r in subscribers.recipients(db, [tid])] == ["Maija@example.fi"]
    actions = [e[0] for e in events(db, "maija@example.fi")]
    assert actions.count("status:blocklisted") == 1 and actions.count("status:active") == 1
    assert cli("subscribers", "unblock", "nobody@example.fi").exit_code == 1


def test_blocking_an_unknown_address_keeps_it_out_of_imports(cli, db, workdir) -> None:
    topic(db)
    blocked = json.loads(cli.ok("subscribers", "block", "Spam@Bad.example", "--json").stdout)
    assert blocked == {"email": "Spam@bad.example", "status": "blocklisted", "changed": True}
    assert subscribers.find(db, "spam@bad.example") is None  # nothing but a keyed hash
    source = workdir / "list.csv"
    source.write_text("email\nspam@bad.example\nok@example.fi\n", encoding="utf-8")
    report = import_json(cli, source, "-t", "yhteisovaikuttavuus")
    assert (report["added"], report["suppressed"]) == (1, 1)
    cli.ok("subscribers", "unblock", "spam@bad.example")
    again = import_json(cli, source, "-t", "yhteisovaikuttavuus")
    assert again["added"] == 1


def test_add_unsubscribe_remove_and_topics_add_speak_json(cli, db, workdir) -> None:
    added = json.loads(
        cli.ok("topics", "add", "vaikuttavuus", "--name", "Vaikuttavuus", "--json").stdout
    )
    assert added == {
        "slug": "vaikuttavuus",
        "name": "Vaikuttavuus",
        "names": {},
        "descriptions": {},
    }
    result = json.loads(
        cli.ok("subscribers", "add", "a@example.fi", "-t", "Vaikuttavuus", "--json").stdout
    )
    assert result == {
        "email": "a@example.fi",
        "result": "added",
        "topics": ["vaikuttavuus"],
        "confirmations_sent": None,
        "confirmations_skipped": None,
    }
    repeat = json.loads(
        cli.ok("subscribers", "add", "A@example.fi", "-t", "vaikuttavuus", "--json").stdout
    )
    assert repeat["result"] == "unchanged"
    gone = json.loads(cli.ok("subscribers", "unsubscribe", "a@example.fi", "--json").stdout)
    assert gone == {"email": "a@example.fi", "topic": None, "changed": 1}
    erased = json.loads(cli.ok("subscribers", "remove", "a@example.fi", "--json").stdout)
    assert erased == {"erased": True, "wal_clean": True}
    assert cli("subscribers", "show", "a@example.fi").exit_code == 1


def test_import_json_with_send_confirmation_keeps_stdout_json(cli, db, workdir, smtp_sink) -> None:
    topic(db)
    result = cli.ok(
        "subscribers", "import", str(data_file(workdir, "bom_utf8.csv")),
        "-t", "yhteisovaikuttavuus", "--send-confirmation", "--json",
        env=smtp_env(smtp_sink),
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["added"] > 0
    assert "confirmation requests mailed:" in result.stderr


def test_staff_add_overrides_an_unsubscribe_only_with_the_flag(cli, db, workdir) -> None:
    topic(db)
    cli.ok("subscribers", "add", "matti@example.fi", "-t", "yhteisovaikuttavuus", "--confirmed")
    quiet = cli.ok("subscribers", "add", "matti@example.fi", "-t", "yhteisovaikuttavuus")
    assert "unsubscribed" not in quiet.stderr
    cli.ok("subscribers", "unsubscribe", "matti@example.fi")
    refused = cli(
        "subscribers", "add", "Matti@Example.fi", "-t", "yhteisovaikuttavuus", "--confirmed"
    )
    assert refused.exit_code == 1
    assert "opted out (unsubscribed)" in refused.stderr and "--override-opt-out" in refused.stderr
    assert subs(db, "matti@example.fi") == {"yhteisovaikuttavuus": "unsubscribed"}
    again = cli.ok(
        "subscribers", "add", "Matti@Example.fi", "-t", "yhteisovaikuttavuus", "--confirmed",
        "--override-opt-out",
    )  # fmt: skip
    assert "opt-out overridden by staff (unsubscribed)" in again.stderr
    overrides = db.execute(
        "SELECT e.source, e.detail FROM events e JOIN subscribers s ON s.id = e.subscriber_id"
        " WHERE s.email_key = 'matti@example.fi' AND e.action = 'consent-override'"
    ).fetchall()
    assert overrides == [("cli", '{"undid": "unsubscribed"}')]
    assert subs(db, "matti@example.fi") == {"yhteisovaikuttavuus": "confirmed"}
