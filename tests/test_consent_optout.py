"""Opt-out is sticky (issue 11 item 3): the rules in ``audience.consent``, and what people
reach of them through ``newsletter serve`` (real HTTP, real SMTP) and the CLI."""

from __future__ import annotations

import time

import pytest
from conftest import SmtpSink
from web_helpers import (
    Client,
    LiveServer,
    confirm_link,
    csrf_of,
    text_part,
    wait_for_mail,
    web_settings,
)

from newsletter import links, tokens
from newsletter.audience import confirmations, consent, people, subscribers
from newsletter.audience.consent import Source
from newsletter.config import Settings
from newsletter.content import topics
from newsletter.store.db import token_key

LIISA = "liisa.virtanen@example.fi"
TOPIC = "yhteisovaikuttavuus"


# --- the rule --------------------------------------------------------------------------------

OPTED_OUT = [
    ("unsubscribed", "active", None),
    (None, "bounced", None),
    (None, "complained", None),
    ("confirmed", "blocklisted", None),
    (None, None, "erased:cli"),
    (None, None, "blocklisted:cli"),
    ("unconfirmed", "active", "erased:web"),
]


@pytest.mark.parametrize(("subscription", "person", "suppression"), OPTED_OUT)
@pytest.mark.parametrize("source", list(Source))
def test_after_an_opt_out_only_the_person_or_an_override_turns_a_subscription_on(
    source, subscription, person, suppression
) -> None:
    state = {"subscription": subscription, "person": person, "suppression": suppression}
    assert consent.opt_out(**state) is not None
    allowed = consent.may_activate(source, **state)
    if source in (Source.CONFIRM_LINK, Source.PREFERENCES):
        assert allowed
    elif source is Source.STAFF_OVERRIDE:
        assert allowed is (person != "blocklisted")  # a blocklist needs `subscribers unblock`
    else:
        assert not allowed, source


@pytest.mark.parametrize("source", list(Source))
@pytest.mark.parametrize("subscription", [None, "unconfirmed", "confirmed"])
def test_without_an_opt_out_any_source_may(source, subscription) -> None:
    assert consent.opt_out(subscription) is None
    assert consent.may_activate(source, subscription=subscription)


@pytest.mark.parametrize(
    ("person", "suppression", "mailed"),
    [
        ("active", None, True),
        (None, None, True),
        (None, "erased:cli", True),  # a new double opt-in is how an erased person returns
        ("bounced", None, False),
        ("complained", None, False),
        ("blocklisted", None, False),
        (None, "blocklisted:cli", False),
        (None, "suppressed:import", False),
    ],
)
def test_what_the_public_form_may_mail(person, suppression, mailed) -> None:
    assert consent.form_may_mail(person, suppression) is mailed


# --- through the web service and the CLI ---------------------------------------------------


@pytest.fixture
def site(settings: Settings, smtp_sink: SmtpSink, db):
    topics.add_topic(db, TOPIC, "Yhteisövaikuttavuus")
    topics.add_topic(db, "lapset-ja-nuoret", "Lapset ja nuoret")
    with LiveServer(web_settings(settings, smtp_sink)) as server:
        yield server


def tid(db, slug: str = TOPIC) -> int:
    found = topics.get_by_slug(db, slug)
    assert found is not None
    return found.id


def sign_up(server: LiveServer, email: str, slugs: list[str]) -> tuple[Client, str]:
    client = Client(server.url)
    page = client.get("/subscribe")
    reply = client.post(
        "/subscribe", form={"csrf": csrf_of(page.body), "email": email, "topics": slugs}
    )
    assert reply.status == 200
    return client, reply.body


def status(db, email: str, slug: str = TOPIC) -> str | None:
    person = subscribers.find(db, email)
    return (
        subscribers.subscription_statuses(db, person["id"]).get(tid(db, slug)) if person else None
    )


def actions(db, email: str) -> list[str]:
    return [e["action"] for e in people.profile(db, email)["events"]]


def left(db, email: str = LIISA) -> int:
    """A person who confirmed and then unsubscribed from the topic."""
    sid = subscribers.add(db, email, topic_ids=[tid(db)], status="confirmed").subscriber_id
    subscribers.unsubscribe(db, sid, tid(db), "one-click")
    return sid


def test_a_sign_up_for_someone_who_left_is_a_request_only_they_can_confirm(
    site, db, smtp_sink, cli, workdir
) -> None:
    sid = left(db)
    client, _ = sign_up(site, LIISA, [TOPIC])
    # The subscription is as it was; the request is recorded; the person is asked.
    assert status(db, LIISA) == "unsubscribed"
    assert actions(db, LIISA)[-1] == consent.REQUEST_EVENT
    site.wait_mail_queue()
    mail = wait_for_mail(smtp_sink, LIISA)[0].message
    assert "Yhteisövaikuttavuus" in text_part(mail)
    # An old list imported with --confirmed does not bring them back, nor does a send.
    old_list = workdir / "vanha.csv"
    old_list.write_text(f"email\n{LIISA}\n", encoding="utf-8")
    cli.ok("subscribers", "import", str(old_list), "-t", TOPIC, "--confirmed")
    assert status(db, LIISA) == "unsubscribed"
    assert subscribers.count_recipients(db, [tid(db)]) == 0
    # Their own confirm link does.
    link = confirm_link(mail)
    page = client.get(link)
    assert "Yhteisövaikuttavuus" in page.body
    client.post(link, form={"csrf": csrf_of(page.body)})
    assert status(db, LIISA) == "confirmed"
    trail = actions(db, LIISA)
    assert trail.index(consent.REQUEST_EVENT) < trail.index("confirmation-sent")
    assert trail[-1] == "confirm"
    assert subscribers.count_recipients(db, [tid(db)]) == 1
    assert db.execute("SELECT COUNT(*) FROM signup_requests").fetchone()[0] == 0
    assert sid == subscribers.find(db, LIISA)["id"]


def test_a_confirm_link_from_before_the_request_does_not_answer_it(site, db) -> None:
    sid = left(db)
    # A genuine confirm link mailed a minute before the person left (still valid).
    issued = int(time.time()) - 60
    key = token_key(db, site.settings.secret)
    old = tokens.make(
        key, links.CONFIRM, sid, expires_at=issued + site.settings.confirm_days * 86400
    )
    sign_up(site, LIISA, [TOPIC])  # a stranger's request, after the link was mailed
    client = Client(site.url)
    page = client.get(f"/confirm/{old}")
    assert page.status == 200 and "Yhteisövaikuttavuus" not in page.body
    assert status(db, LIISA) == "unsubscribed"


def test_unsubscribing_again_voids_a_pending_request(site, db) -> None:
    sid = left(db)
    sign_up(site, LIISA, [TOPIC])
    assert confirmations.pending_topics(db, sid)
    subscribers.set_subscription(db, sid, tid(db), "confirmed", "web")  # preferences page
    subscribers.unsubscribe(db, sid, tid(db), "one-click")
    assert confirmations.pending_topics(db, sid) == []


@pytest.mark.parametrize("kind", ["bounced", "blocklisted", "blocked", "unknown"])
def test_the_form_never_mails_bounced_blocklisted_or_suppressed_addresses(
    site, db, smtp_sink, cli, kind
) -> None:
    if kind == "blocked":  # blocklisted by staff without ever being on the list
        cli.ok("subscribers", "block", LIISA)
    elif kind != "unknown":
        sid = subscribers.add(db, LIISA, topic_ids=[tid(db)], status="confirmed").subscriber_id
        subscribers.set_status(db, sid, kind, "cli")
    _, body = sign_up(site, LIISA, [TOPIC, "lapset-ja-nuoret"])
    _, fresh = sign_up(site, "uusi@example.fi", [TOPIC])
    site.wait_mail_queue()
    assert body == fresh  # the same answer, whoever the address belongs to
    if kind == "unknown":
        assert len(smtp_sink.to(LIISA)) == 1
        return
    assert smtp_sink.to(LIISA) == []
    assert len(smtp_sink.to("uusi@example.fi")) == 1
    if kind == "blocked":
        assert subscribers.find(db, LIISA) is None  # no row is created for a blocked address
    else:
        assert subscribers.find(db, LIISA)["status"] == kind
        assert status(db, LIISA, "lapset-ja-nuoret") is None  # a request, not a subscription
        assert actions(db, LIISA).count(consent.REQUEST_EVENT) == 2


def test_an_erased_person_may_come_back_by_a_new_double_opt_in(site, db, smtp_sink) -> None:
    subscribers.add(db, LIISA, topic_ids=[tid(db)], status="confirmed")
    subscribers.erase(db, LIISA)
    client, _ = sign_up(site, LIISA, [TOPIC])
    site.wait_mail_queue()
    assert subscribers.is_suppressed(db, LIISA)
    link = confirm_link(wait_for_mail(smtp_sink, LIISA)[0].message)
    client.post(link, form={"csrf": csrf_of(client.get(link).body)})
    assert not subscribers.is_suppressed(db, LIISA) and status(db, LIISA) == "confirmed"


def test_three_sign_ups_in_a_second_send_one_confirmation(site, db, smtp_sink) -> None:
    for _ in range(3):
        sign_up(site, LIISA, [TOPIC])
    site.wait_mail_queue()
    assert len(smtp_sink.to(LIISA)) == 1
    assert actions(db, LIISA).count("confirmation-sent") == 1


def test_the_confirmation_interval_is_configurable(settings, smtp_sink, db) -> None:
    topics.add_topic(db, TOPIC, "Yhteisövaikuttavuus")
    config = web_settings(settings, smtp_sink, confirm_interval_minutes=0)
    with LiveServer(config) as server:
        for _ in range(2):
            sign_up(server, LIISA, [TOPIC])
        server.wait_mail_queue()
    assert len(smtp_sink.to(LIISA)) == 2


def test_the_interval_setting_is_read_from_the_file_and_the_environment(tmp_path) -> None:
    from newsletter.config import load_settings

    path = tmp_path / "n.toml"
    path.write_text("[web]\nconfirm_interval_minutes = 15\n", encoding="utf-8")
    assert load_settings(path, env={}).confirm_interval_minutes == 15
    env = {"NEWSLETTER_CONFIRM_INTERVAL": "120"}
    assert load_settings(path, env=env).confirm_interval_minutes == 120


def test_staff_override_of_a_bounce_is_explicit_and_in_the_trail(cli, db) -> None:
    topic = topics.add_topic(db, TOPIC, "Yhteisövaikuttavuus").id
    sid = subscribers.add(db, LIISA, topic_ids=[topic], status="confirmed").subscriber_id
    subscribers.set_status(db, sid, "bounced", "bounce")
    refused = cli("subscribers", "add", LIISA, "-t", TOPIC, "--confirmed")
    assert refused.exit_code == 1 and refused.stderr.startswith("error: ")
    assert "bounced" in refused.stderr and "--override-opt-out" in refused.stderr
    assert subscribers.get(db, sid)["status"] == "bounced"
    cli.ok("subscribers", "add", LIISA, "-t", TOPIC, "--confirmed", "--override-opt-out")
    assert subscribers.get(db, sid)["status"] == "active"
    assert consent.OVERRIDE_EVENT in actions(db, LIISA)
    # A blocklist is not overridden by `add`: `subscribers unblock` is that staff action.
    subscribers.set_status(db, sid, "blocklisted", "cli")
    topics.add_topic(db, "lapset-ja-nuoret", "Lapset ja nuoret")
    blocked = cli("subscribers", "add", LIISA, "-t", "lapset-ja-nuoret", "--override-opt-out")
    assert blocked.exit_code == 1 and "unblock" in blocked.stderr
