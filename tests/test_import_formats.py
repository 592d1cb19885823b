"""Importing other tools' exports: consent kept, people who left never subscribed, data kept
as attributes; this tool's own export round trip; ``--suppress``; Excel and private exports.

The fixtures in data/subscribers/ use each tool's export header row: listmonk's subscriber
export, Sendy's list export, Ghost's members export, Substack's email list, Mailchimp's
audience export.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from newsletter.audience import importer, subscribers
from newsletter.content import topics
from newsletter.errors import NewsletterError

DATA = Path(__file__).parent / "data" / "subscribers"


def copy(workdir: Path, name: str) -> Path:
    target = workdir / name
    shutil.copyfile(DATA / name, target)
    return target


def import_json(cli, path: Path, *args: str) -> dict:
    return json.loads(cli.ok("subscribers", "import", str(path), *args, "--json").stdout)


def topic(db, slug: str = "uutiset", name: str = "Uutiset") -> int:
    return topics.add_topic(db, slug, name).id


def recipients(db, tid: int) -> list[str]:
    return [r.email for r in subscribers.recipients(db, [tid])]


def status_of(db, email: str) -> tuple[str, dict[str, str]] | None:
    row = subscribers.find(db, email)
    if row is None:
        return None
    subs = {
        slug: state
        for slug, state in db.execute(
            "SELECT t.slug, x.status FROM subscriptions x JOIN topics t ON t.id = x.topic_id"
            " WHERE x.subscriber_id = ?",
            [row["id"]],
        )
    }
    return row["status"], subs


def attributes(db, email: str) -> dict:
    return json.loads(subscribers.require(db, email)["attributes"])


# Other tools' consent ----------------------------------------------------------------


def test_listmonk_status_and_attributes(cli, db, workdir) -> None:
    tid = topic(db)
    path = copy(workdir, "listmonk_subscribers.csv")
    report = import_json(cli, path, "-t", "uutiset", "--confirmed")
    assert (report["added"], report["suppressed"]) == (2, 2)
    assert report["suppressed_by_reason"] == {"blocklisted": 1, "unsubscribed": 1}
    assert recipients(db, tid) == ["anna.andersson@example.fi", "matti.meikalainen@example.fi"]
    # The language comes from listmonk's attributes JSON; the rest of it is kept.
    anna = subscribers.require(db, "anna.andersson@example.fi")
    assert anna["lang"] == "sv"
    assert attributes(db, "anna.andersson@example.fi") == {
        "lang": "sv",
        "city": "Vaasa",
        "member": True,
        "uuid": "1f7b2c3e-8a41-4c55-9a52-1b1f0d9e7a01",
        "created_at": "2024-02-01 09:12:44.123456+02",
        "updated_at": "2024-02-01 09:12:44.123456+02",
    }
    # People who had left are not even stored: only the keyed hash keeps them out.
    for gone in ("estetty@example.fi", "poistunut@example.fi"):
        assert subscribers.find(db, gone) is None
        assert subscribers.is_suppressed(db, gone)
    assert report["columns"] == {
        "email": "email",
        "name": "name",
        "attributes": "attributes",
        "consent": "status",
    }
    assert report["attributes"] == ["uuid", "created_at", "updated_at"]


def test_sendy_status_and_gdpr(cli, db, workdir) -> None:
    tid = topic(db)
    report = import_json(
        cli, copy(workdir, "sendy_subscribers.csv"), "-t", "uutiset", "--confirmed"
    )
    assert report["suppressed_by_reason"] == {"blocklisted": 1, "bounced": 1, "unsubscribed": 1}
    # Ville gave no GDPR consent, Kalle never confirmed: unconfirmed despite --confirmed.
    assert (report["added"], report["suppressed"], report["no_consent"]) == (3, 3, 2)
    # Only Liisa has both "Subscribed" and recorded GDPR consent.
    assert recipients(db, tid) == ["liisa@example.fi"]
    assert status_of(db, "ville@example.fi") == ("active", {"uutiset": "unconfirmed"})
    assert status_of(db, "kalle@example.fi") == ("active", {"uutiset": "unconfirmed"})
    assert report["unconfirmed"] == 2
    assert attributes(db, "liisa@example.fi") == {
        "Joined": "Jan 10, 2025 9:30am",
        "Last activity": "Mar 2, 2025 8:00pm",
    }
    again = cli.ok("subscribers", "import", "sendy_subscribers.csv", "-t", "uutiset", "--dry-run")
    # Those who had left are kept out of the next import by the suppression list.
    assert "  not subscribed: 3 on the suppression list (left, erased or blocked)\n" in again.stdout


def test_ghost_members_export(cli, db, workdir) -> None:
    tid = topic(db)
    report = import_json(cli, copy(workdir, "ghost_members.csv"), "-t", "uutiset", "--confirmed")
    assert report["suppressed_by_reason"] == {"unsubscribed": 1}
    assert recipients(db, tid) == ["hanna@example.fi", "pirjo@example.fi"]
    hanna = attributes(db, "hanna@example.fi")
    assert (hanna["labels"], hanna["note"], hanna["tiers"]) == (
        "hallitus, vip",
        "Hallituksen jäsen",
        "Free",
    )
    shown = cli.ok("subscribers", "show", "hanna@example.fi").stdout
    assert "  labels: hallitus, vip\n" in shown and "  note: Hallituksen jäsen\n" in shown


def test_substack_email_list(cli, db, workdir) -> None:
    tid = topic(db)
    report = import_json(
        cli, copy(workdir, "substack_email_list.csv"), "-t", "uutiset", "--confirmed"
    )
    assert report["suppressed_by_reason"] == {"unsubscribed": 1}
    assert recipients(db, tid) == ["aapo@example.fi", "bea@example.fi"]
    assert attributes(db, "bea@example.fi")["active_subscription"] == "true"
    assert subscribers.find(db, "cecilia@example.fi") is None


def test_mailchimp_tags_and_optin_time_are_kept(cli, db, workdir) -> None:
    topic(db)
    import_json(cli, copy(workdir, "mailchimp_members.csv"), "-t", "uutiset")
    kept = attributes(db, "aino.virtanen@saatio.fi")
    assert kept["TAGS"] == '"seminaari"'
    assert kept["OPTIN_TIME"] == "2024-03-02 09:14:11"
    # Exported again, the attributes travel along.
    rows = list(csv.DictReader(io.StringIO(cli.ok("subscribers", "export").stdout)))
    aino = next(r for r in rows if r["email"] == "Aino.Virtanen@saatio.fi")
    assert json.loads(aino["attributes"])["OPTIN_TIME"] == "2024-03-02 09:14:11"


def test_unknown_status_value_is_an_invalid_row_not_a_subscription(cli, db, workdir) -> None:
    tid = topic(db)
    (workdir / "outo.csv").write_text(
        "email,status\nhyva@example.fi,enabled\nouto@example.fi,maybe-later\n", encoding="utf-8"
    )
    report = import_json(cli, workdir / "outo.csv", "-t", "uutiset", "--confirmed")
    assert report["invalid"] == [
        {"line": 3, "email": "outo@example.fi", "error": "status: unknown status 'maybe-later'"}
    ]
    assert recipients(db, tid) == ["hyva@example.fi"]


# The importer never reactivates anyone who left (sticky opt-out) ------------------------


def test_import_never_reactivates_people_who_left(cli, db, workdir) -> None:
    tid = topic(db)
    other = topic(db, "muut", "Muut")
    left = subscribers.add(db, "lahti@example.fi", topic_ids=[tid, other])
    subscribers.unsubscribe(db, left.subscriber_id, tid, "web")
    blocked = subscribers.add(db, "esto@example.fi", topic_ids=[other])
    subscribers.set_status(db, blocked.subscriber_id, "blocklisted", "cli")
    bounced = subscribers.add(db, "pomppu@example.fi", topic_ids=[other])
    subscribers.set_status(db, bounced.subscriber_id, "bounced", "bounce")
    subscribers.suppress(db, "tuntematon@example.fi", "blocklisted:cli")
    erased = subscribers.add(db, "poistettu@example.fi", topic_ids=[tid])
    del erased
    subscribers.erase(db, "poistettu@example.fi")
    # An old export of ours says they are all active and confirmed.
    (workdir / "vanha.csv").write_text(
        "email,status,topics\n"
        + "".join(
            f"{e},active,uutiset;muut\n"
            for e in (
                "lahti@example.fi",
                "esto@example.fi",
                "pomppu@example.fi",
                "tuntematon@example.fi",
                "poistettu@example.fi",
            )
        ),
        encoding="utf-8",
    )
    report = import_json(cli, workdir / "vanha.csv", "--confirmed")
    assert report["suppressed_by_reason"] == {
        "blocklisted": 1,
        "bounced": 1,
        "suppression_list": 2,
        "unsubscribed_here": 1,
    }
    assert recipients(db, tid) == []
    assert recipients(db, other) == ["lahti@example.fi"]  # only the topic they kept
    assert status_of(db, "esto@example.fi") == ("blocklisted", {"muut": "confirmed"})
    assert status_of(db, "pomppu@example.fi")[0] == "bounced"
    assert subscribers.find(db, "tuntematon@example.fi") is None
    assert subscribers.find(db, "poistettu@example.fi") is None


def test_a_file_never_lowers_a_blocklisted_person_to_bounced(cli, db, workdir) -> None:
    tid = topic(db)
    blocked = subscribers.add(db, "esto@example.fi", topic_ids=[tid])
    subscribers.set_status(db, blocked.subscriber_id, "blocklisted", "cli")
    (workdir / "b.csv").write_text("email,status\nesto@example.fi,bounced\n", encoding="utf-8")
    import_json(cli, workdir / "b.csv")
    assert status_of(db, "esto@example.fi")[0] == "blocklisted"


# --suppress ---------------------------------------------------------------------------


def test_suppress_takes_another_tools_unsubscribed_export(cli, db, workdir) -> None:
    tid = topic(db)
    other = topic(db, "muut", "Muut")
    subscribers.add(db, "tuttu@example.fi", topic_ids=[tid, other])
    subscribers.add(db, "jaa@example.fi", topic_ids=[tid])
    (workdir / "cleaned.csv").write_text(
        '"Email Address","First Name","CLEAN_TIME"\n'
        '"pois@example.fi","Pois","2025-01-01 10:00:00"\n',
        encoding="utf-8",
    )
    (workdir / "unsubscribed.csv").write_text(
        "Email Address,First Name\ntuttu@example.fi,Tuttu\nuusi@example.fi,Uusi\n",
        encoding="utf-8",
    )
    report = import_json(cli, workdir / "unsubscribed.csv", "--suppress")
    assert (report["suppressed"], report["added"]) == (2, 0)
    assert status_of(db, "tuttu@example.fi") == (
        "active",
        {"uutiset": "unsubscribed", "muut": "unsubscribed"},
    )
    assert subscribers.find(db, "uusi@example.fi") is None
    import_json(cli, workdir / "cleaned.csv", "--suppress")
    # Later imports keep them out.
    (workdir / "kaikki.csv").write_text(
        "email\nuusi@example.fi\npois@example.fi\ntuttu@example.fi\n", encoding="utf-8"
    )
    report = import_json(cli, workdir / "kaikki.csv", "-t", "uutiset", "--confirmed")
    assert report["suppressed_by_reason"] == {"suppression_list": 2, "unsubscribed_here": 1}
    assert recipients(db, tid) == ["jaa@example.fi"]
    refused = cli("subscribers", "import", "kaikki.csv", "--suppress", "--confirmed")
    assert refused.exit_code == 2 and "--suppress" in refused.stderr


# This tool's own export round trip ------------------------------------------------------


def test_own_export_round_trip_into_an_empty_database(cli, db, workdir, tmp_path) -> None:
    a, b = topic(db), topic(db, "hyvinvointi", "Hyvinvointi")
    subscribers.add(db, "eka@example.fi", name="Eka", lang="sv", topic_ids=[a, b])
    two = subscribers.add(db, "toka@example.fi", lang="en", topic_ids=[a, b])
    subscribers.unsubscribe(db, two.subscriber_id, a, "web")
    subscribers.add(db, "odottaa@example.fi", topic_ids=[a], status="unconfirmed")
    blocked = subscribers.add(db, "esto@example.fi", topic_ids=[a])
    subscribers.set_status(db, blocked.subscriber_id, "blocklisted", "cli")
    db.execute(
        "UPDATE subscribers SET attributes = ? WHERE email = 'eka@example.fi'",
        ['{"city": "Vaasa"}'],
    )
    before = {t: [(r.email, r.lang) for r in subscribers.recipients(db, [t])] for t in (a, b)}
    cli.ok("subscribers", "export", "-o", "kaikki.csv")
    # A second, empty database: the topics come from the file.
    env = {"NEWSLETTER_DB": str(tmp_path / "uusi.db")}
    result = cli.ok("subscribers", "import", "kaikki.csv", "--confirmed", "--json", env=env)
    report = json.loads(result.stdout)
    assert report["suppressed_by_reason"] == {"blocklisted": 1}
    assert sorted(report["topics_created"]) == ["hyvinvointi", "uutiset"]
    from newsletter.store.db import open_db

    fresh = open_db(tmp_path / "uusi.db")
    try:
        for slug, old_id in (("uutiset", a), ("hyvinvointi", b)):
            found = topics.resolve(fresh, slug)
            after = [(r.email, r.lang) for r in subscribers.recipients(fresh, [found.id])]
            assert after == before[old_id], slug
        toka = subscribers.require(fresh, "toka@example.fi")
        assert (
            subscribers.subscription_statuses(fresh, toka["id"])[
                topics.resolve(fresh, "uutiset").id
            ]
            == "unsubscribed"
        )
        assert json.loads(subscribers.require(fresh, "eka@example.fi")["attributes"]) == {
            "city": "Vaasa"
        }
    finally:
        fresh.close()


# Reports ------------------------------------------------------------------------------


def test_report_names_columns_ignored_ones_and_duplicate_lines(cli, db, workdir) -> None:
    topic(db)
    (workdir / "kopiot.csv").write_text(
        "Sähköposti,Etunimi,Sukunimi,Kieli,,Jäsennumero\n"
        "eka@example.fi,Eeva,Ek,sv,x,101\n"
        "toka@example.fi,Toivo,Ek,,,102\n"
        "EKA@example.fi,Eeva,Ek,,,101\n"
        "toka@example.fi,,,,,\n",
        encoding="utf-8",
    )
    report = import_json(cli, workdir / "kopiot.csv", "-t", "uutiset")
    assert report["columns"] == {
        "email": "Sähköposti",
        "name": "Etunimi + Sukunimi",
        "lang": "Kieli",
    }
    assert report["attributes"] == ["Jäsennumero"]
    assert report["ignored"] == ["(column 5, no header)"]
    assert report["duplicate_lines"] == [
        {"line": 4, "first_line": 2, "email": "EKA@example.fi"},
        {"line": 5, "first_line": 3, "email": "toka@example.fi"},
    ]
    text = cli.ok("subscribers", "import", "kopiot.csv", "-t", "uutiset")
    assert "  line 4: duplicate of line 2 (EKA@example.fi)" in text.stderr
    assert "kept as attributes: Jäsennumero" in text.stdout


def test_progress_callback_reports_both_phases(db, workdir) -> None:
    path = workdir / "p.csv"
    path.write_text("email\n" + "".join(f"l{i}@example.fi\n" for i in range(1200)))
    seen: dict[str, tuple[int, int]] = {}
    importer.import_file(
        db, path, progress=lambda phase, done, total: seen.update({phase: (done, total)})
    )
    assert seen["writing"] == (1200, 1200)
    assert seen["reading"][1] == path.stat().st_size


# Export -------------------------------------------------------------------------------


def test_excel_export_opens_as_columns(cli, db, workdir) -> None:
    tid = topic(db)
    subscribers.add(db, "eka@example.fi", name="Äijälä; Öljy", topic_ids=[tid])
    cli.ok("subscribers", "export", "--excel", "-o", "excel.csv")
    raw = (workdir / "excel.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfemail;name;lang;")
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    with (workdir / "excel.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, dialect="excel", delimiter=";"))
    assert rows[0][:5] == ["email", "name", "lang", "status", "topics"]
    assert rows[1][:5] == ["eka@example.fi", "Äijälä; Öljy", "fi", "active", "uutiset"]
    # And it imports back unchanged.
    assert import_json(cli, workdir / "excel.csv")["unchanged"] == 1


def test_every_status_filter_exports(cli, db) -> None:
    tid = topic(db)
    subscribers.add(db, "kylla@example.fi", topic_ids=[tid])
    gone = subscribers.add(db, "pois@example.fi", topic_ids=[tid])
    subscribers.unsubscribe(db, gone.subscriber_id, tid, "web")
    subscribers.add(db, "odottaa@example.fi", topic_ids=[tid], status="unconfirmed")

    def emails(*args: str) -> list[str]:
        out = cli.ok("subscribers", "export", "--format", "json", *args).stdout
        return [row["email"] for row in json.loads(out)]

    assert emails("--status", "unsubscribed") == ["pois@example.fi"]
    assert emails("--status", "unconfirmed", "-t", "uutiset") == ["odottaa@example.fi"]
    assert emails("--status", "confirmed") == ["kylla@example.fi"]
    assert emails("-t", "uutiset") == ["kylla@example.fi"]
    rows = json.loads(cli.ok("subscribers", "export", "--format", "json", "--status",
                             "unsubscribed").stdout)  # fmt: skip
    assert rows[0]["unsubscribed_from"] == ["uutiset"]
    bad = cli("subscribers", "export", "--excel", "--format", "json")
    assert bad.exit_code == 2


def test_export_file_is_private_whatever_the_umask(cli, db, workdir) -> None:
    topic(db)
    (workdir / "vanha.csv").write_text("old", encoding="utf-8")
    os.chmod(workdir / "vanha.csv", 0o644)
    old = os.umask(0)
    try:
        cli.ok("subscribers", "export", "-o", "uusi.csv")
        cli.ok("subscribers", "export", "-o", "vanha.csv")
    finally:
        os.umask(old)
    for name in ("uusi.csv", "vanha.csv"):
        assert stat.S_IMODE((workdir / name).stat().st_mode) == 0o600, name


@pytest.mark.parametrize("name", ["listmonk_subscribers.csv", "sendy_subscribers.csv",
                                  "ghost_members.csv", "substack_email_list.csv"])  # fmt: skip
def test_dry_run_of_each_format_writes_nothing(cli, db, workdir, name) -> None:
    topic(db)
    report = import_json(cli, copy(workdir, name), "-t", "uutiset", "--dry-run")
    assert report["added"] + report["suppressed"] > 0
    assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0] == 0


def test_undo_of_a_failed_import_keeps_an_opt_out_made_meanwhile(db, workdir, monkeypatch) -> None:
    """The import fails on its last row after someone unsubscribed between two chunks:
    everything the import did is undone, but their unsubscribe stays."""
    tid = topic(db)
    known = subscribers.add(db, "tuttu@example.fi", name="Vanha", topic_ids=[])
    monkeypatch.setattr(importer, "CHUNK", 1)
    path = workdir / "kaatuu.csv"
    path.write_text(
        "email,name\ntuttu@example.fi,Uusi\nuusi@example.fi,Uusi\nviimeinen@example.fi,X\n",
        encoding="utf-8",
    )
    db.execute(
        "CREATE TRIGGER refuse_last BEFORE INSERT ON subscribers"
        " WHEN NEW.email = 'viimeinen@example.fi' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )

    def opt_out_after_first_chunk(phase: str, done: int, total: int) -> None:
        if phase == "writing" and done == 1:
            subscribers.unsubscribe(db, known.subscriber_id, tid, "one-click")

    with pytest.raises(NewsletterError, match="nothing was changed: disk full"):
        importer.import_file(
            db, path, topic_ids=[tid], confirmed=True, progress=opt_out_after_first_chunk
        )
    assert subscribers.find(db, "uusi@example.fi") is None
    row = subscribers.require(db, "tuttu@example.fi")
    assert row["name"] == "Vanha"
    assert subscribers.subscription_statuses(db, known.subscriber_id) == {tid: "unsubscribed"}
    actions = [a for (a,) in db.execute(
        "SELECT action FROM events WHERE subscriber_id = ? ORDER BY id", [known.subscriber_id]
    )]  # fmt: skip
    assert actions == ["create", "unsubscribe"]
