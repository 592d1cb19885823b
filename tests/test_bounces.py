"""Bounces and complaints after the send: DSNs and ARF reports in the shapes real servers
send, read from a real mbox and Maildir, matched by the VERP envelope sender, else by the
original Message-ID or the address; counted once however often they are read."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import bounce_fixtures as fx
import pytest
from send_helpers import add_people, make_edition, make_topic

from newsletter import links
from newsletter.audience import subscribers
from newsletter.config import Settings
from newsletter.delivery import bounces
from newsletter.delivery.bounces import reports
from newsletter.store.db import token_key


@pytest.fixture
def sent(db, settings: Settings, smtp_sink):
    return fx.deliver_with_verp(db, settings, smtp_sink)


def _mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(str(path))
    for data in messages:
        box.add(data)
    box.close()
    return path


def test_verp_sender_names_the_person_and_edition(db, sent) -> None:
    settings, edition, envelope = sent
    key = token_key(db, settings.secret)
    for address, (mail_from, _) in envelope.items():
        assert mail_from.startswith("bounces+") and mail_from.endswith("@example.fi")
        person = subscribers.find(db, address)
        assert links.read_bounce_address(key, mail_from) == (person["id"], edition)
    forged = next(iter(envelope.values()))[0].replace("bounces+1", "bounces+2")
    assert links.read_bounce_address(key, forged) is None


def test_every_shape_is_read_and_counted_once(db, sent, tmp_path: Path) -> None:
    settings, edition, envelope = sent
    people = sorted(envelope)
    box = _mbox(tmp_path / "bounces.mbox", fx.all_shapes(envelope, people))

    first = bounces.process(db, settings, bounces.from_mailbox(box), "mailbox").as_dict()
    assert (first["hard_bounces"], first["soft_bounces"], first["complaints"]) == (4, 2, 2)
    assert first["unmatched"] == 1 and first["duplicates"] == 0
    assert [other["subject"] for other in first["not_reports"]] == [
        "Automaattinen vastaus: Uutiskirje"
    ]
    status = {p: subscribers.find(db, p)["status"] for p in people}
    assert [status[people[i]] for i in (0, 1, 2, 6)] == ["bounced"] * 4  # hard_bounce_limit 1
    assert [status[people[i]] for i in (3, 5, 4, 7)] == ["active"] * 4
    for complainer in (people[4], people[7]):
        person = subscribers.find(db, complainer)
        # Unsubscribed from every topic, the other topic too, and kept off future imports.
        assert set(subscribers.subscription_statuses(db, person["id"]).values()) == {"unsubscribed"}
        assert subscribers.is_suppressed(db, complainer)
    assert bounces.edition_counts(db, edition) == {
        "hard_bounces": 4,
        "soft_bounces": 2,
        "complaints": 2,
    }

    again = bounces.process(db, settings, bounces.from_mailbox(box), "mailbox").as_dict()
    assert again["duplicates"] == 8
    assert (again["hard_bounces"], again["soft_bounces"], again["complaints"]) == (0, 0, 0)
    assert subscribers.find(db, people[0])["hard_bounces"] == 1
    assert bounces.edition_counts(db, edition)["hard_bounces"] == 4


def test_a_forged_token_is_not_trusted(db, sent, tmp_path: Path) -> None:
    settings, _, envelope = sent
    people = sorted(envelope)
    real = envelope[people[0]][0]
    local, _, domain = real.partition("@")
    forged = local[:-3] + ("aaa" if not local.endswith("aaa") else "bbb") + "@" + domain
    # The forged report names nobody on the list and no Message-ID we sent.
    data = fx.postfix_dsn(forged, "outsider@example.net", "<forged@example.net>")
    box = _mbox(tmp_path / "forged.mbox", [data])
    result = bounces.process(db, settings, bounces.from_mailbox(box), "mailbox")
    assert result.unmatched == 1 and result.hard == 0


def test_diagnostics_keep_no_address() -> None:
    parsed = reports.parse(fx.postfix_dsn("b@example.fi", "maija@example.org", "<x@y>"))
    assert parsed and parsed[0].kind == "hard"
    assert "maija@example.org" not in parsed[0].detail


def test_cli_import_status_and_send_warning(db, sent, cli, tmp_path: Path) -> None:
    _settings, edition, envelope = sent
    people = sorted(envelope)
    maildir = mailbox.Maildir(str(tmp_path / "Maildir"))
    for data in fx.all_shapes(envelope, people):
        maildir.add(data)
    result = cli.ok("bounces", "import", str(tmp_path / "Maildir"), "--json")
    data = json.loads(result.stdout)
    assert data["hard_bounces"] == 4 and data["complaints"] == 2
    shown = json.loads(cli.ok("status", str(edition), "--json").stdout)
    assert (shown["hard_bounces"], shown["soft_bounces"], shown["complaints"]) == (4, 2, 2)
    assert "complaints 2" in cli.ok("status", str(edition)).stdout
    # The next edition: `send` warns before it mails anyone (6/8 bounced, 2/8 complained).
    topic = make_topic(db, "seuraava", "Seuraava")
    add_people(db, topic, 1, prefix="uusi")
    second = make_edition(db, [topic])
    result = cli("send", str(second), "--dry-run")
    assert "bounce rate 75.0% (above 2%)" in result.output
    assert "complaint rate 25.00% (above 0.1%)" in result.output


def _statuses(db, address: str) -> set[str]:
    return set(subscribers.subscription_statuses(db, subscribers.find(db, address)["id"]).values())


def test_reports_naming_only_an_address_are_listed_not_acted_on(db, sent, cli, tmp_path) -> None:
    # The bounce address is public (every Return-Path): anyone can mail it a complaint or a
    # bounce about any subscriber. Without our VERP token or Message-ID nothing happens.
    _settings, _, envelope = sent
    people = sorted(envelope)
    forged = [
        fx.arf_complaint("bounces@example.fi", people[0], "<forged-1@attacker.example>"),
        fx.arf_complaint("someone@attacker.example", people[1], "<forged-2@attacker.example>"),
        fx.postfix_dsn("bounces@example.fi", people[2], "<forged-3@attacker.example>"),
        fx.microsoft_dsn("bounces@example.fi", people[3], "<forged-4@x>", status="5.2.2"),
    ]
    box = _mbox(tmp_path / "forged.mbox", forged)
    env = {"NEWSLETTER_BOUNCE_ADDRESS": "bounces@example.fi"}  # VERP on, as it was sent
    data = json.loads(cli.ok("bounces", "import", str(box), "--json", env=env).stdout)
    assert (data["hard_bounces"], data["soft_bounces"], data["complaints"]) == (0, 0, 0)
    assert data["unmatched"] == 4
    listed = data["unmatched_reports"]
    assert [item["kind"] for item in listed] == ["complaint", "complaint", "hard", "soft"]
    assert all("only by address" in item["why"] for item in listed)
    for person in people[:4]:
        assert subscribers.find(db, person)["status"] == "active"
        assert _statuses(db, person) == {"confirmed"}
        assert not subscribers.is_suppressed(db, person)
    assert db.execute("SELECT COUNT(*) FROM bounce_reports").fetchone()[0] == 0
    text = cli.ok("bounces", "import", str(box), env=env).stdout
    assert text.count("  unmatched complaint: ") == 2 and "  unmatched hard: " in text
    assert "4 about nobody on the list" in text


def test_without_verp_only_a_hard_bounce_may_match_by_address(db, settings, tmp_path) -> None:
    topic = make_topic(db)
    bounced, complainer, delayed = add_people(db, topic, 3)
    assert not settings.bounce_address
    box = _mbox(
        tmp_path / "plain.mbox",
        [
            fx.postfix_dsn("uutiskirje@example.fi", bounced, "<relay-rewrote@example.fi>"),
            fx.arf_complaint("uutiskirje@example.fi", complainer, "<unknown@example.fi>"),
            fx.microsoft_dsn("uutiskirje@example.fi", delayed, "<x@y>", status="5.2.2"),
        ],
    )
    result = bounces.process(db, settings, bounces.from_mailbox(box), "mailbox")
    assert (result.hard, result.complaints, result.soft, result.unmatched) == (1, 0, 0, 2)
    assert [item["kind"] for item in result.address_only] == ["complaint", "soft"]
    assert subscribers.find(db, bounced)["status"] == "bounced"
    assert _statuses(db, complainer) == {"confirmed"}
    assert not subscribers.is_suppressed(db, complainer)
