"""Unsubscribing from everything holds for topics created later too, by every path a
person can be subscribed through, until the person's own confirmed action (review finding 3).

Real parts: ``newsletter serve`` over HTTP with a real SMTP sink, the CLI in-process, one
SQLite file."""

from __future__ import annotations

import pytest
from conftest import SmtpSink
from web_helpers import Client, LiveServer, confirm_link, csrf_of, wait_for_mail, web_settings

from newsletter import links
from newsletter.audience import people, subscribers
from newsletter.config import Settings
from newsletter.content import topics
from newsletter.store.db import token_key

LIISA = "liisa.virtanen@example.fi"
OLD, NEW = "yhteisovaikuttavuus", "lapset-ja-nuoret"


@pytest.fixture
def site(settings: Settings, smtp_sink: SmtpSink, db):
    topics.add_topic(db, OLD, "Yhteisövaikuttavuus")
    with LiveServer(web_settings(settings, smtp_sink)) as server:
        yield server


def tid(db, slug: str) -> int:
    found = topics.get_by_slug(db, slug)
    assert found is not None
    return found.id


def status(db, slug: str, email: str = LIISA) -> str | None:
    person = subscribers.require(db, email)
    return subscribers.subscription_statuses(db, person["id"]).get(tid(db, slug))


def staff_try_everything(cli, workdir) -> None:
    """What staff can do without an override, against a topic made after the opt-out."""
    old_list = workdir / "vanha.csv"
    old_list.write_text(f"email,name\n{LIISA},Liisa Virtanen\n", encoding="utf-8")
    cli.ok("subscribers", "import", str(old_list), "-t", NEW, "--confirmed")
    cli.ok("subscribers", "import", str(old_list), "-t", NEW)
    refused = cli("subscribers", "add", LIISA, "-t", NEW, "--confirmed")
    assert refused.exit_code != 0 and "opted out (unsubscribed)" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_everything_from_the_preferences_page_covers_a_topic_made_later(
    site, db, cli, workdir, smtp_sink
) -> None:
    sid = subscribers.add(db, LIISA, topic_ids=[tid(db, OLD)], status="confirmed").subscriber_id
    url = links.preferences_url(site.settings, token_key(db, site.settings.secret), sid)
    client = Client(site.url)
    page = client.get(url)
    done = client.post(url, form={"csrf": csrf_of(page.body), "action": "unsubscribe_all"})
    assert done.status == 200 and status(db, OLD) == "unsubscribed"

    cli.ok("topics", "add", NEW, "--name", "Lapset ja nuoret")
    staff_try_everything(cli, workdir)
    assert status(db, NEW) in (None, "unsubscribed")
    assert subscribers.count_recipients(db, [tid(db, NEW)]) == 0
    assert subscribers.count_recipients(db, [tid(db, OLD)]) == 0

    # A stranger's sign-up for the new topic is only a request, answered by her own link.
    form = client.get("/subscribe")
    client.post("/subscribe", form={"csrf": csrf_of(form.body), "email": LIISA, "topics": [NEW]})
    assert status(db, NEW) in (None, "unsubscribed")
    site.wait_mail_queue()
    mail = wait_for_mail(smtp_sink, LIISA)[0].message
    link = confirm_link(mail)
    step = client.get(link)
    client.post(link, form={"csrf": csrf_of(step.body)})
    assert status(db, NEW) == "confirmed"
    assert subscribers.count_recipients(db, [tid(db, NEW)]) == 1
    # She came back for that topic only; the one she left stays left.
    assert status(db, OLD) == "unsubscribed"
    trail = [e["action"] for e in people.profile(db, LIISA)["events"]]
    assert subscribers.UNSUBSCRIBE_ALL_EVENT in trail and trail[-1] == "confirm"


def test_everything_from_the_command_line_covers_a_topic_made_later(cli, db, workdir) -> None:
    cli.ok("topics", "add", OLD, "--name", "Yhteisövaikuttavuus")
    cli.ok("subscribers", "add", LIISA, "-t", OLD, "--confirmed")
    cli.ok("subscribers", "unsubscribe", LIISA)
    cli.ok("topics", "add", NEW, "--name", "Lapset ja nuoret")
    staff_try_everything(cli, workdir)
    assert subscribers.count_recipients(db, [tid(db, NEW)]) == 0
    # Staff may still bring her back when she asked them directly: explicit and recorded.
    cli.ok("subscribers", "add", LIISA, "-t", NEW, "--confirmed", "--override-opt-out")
    assert subscribers.count_recipients(db, [tid(db, NEW)]) == 1
    assert "consent-override" in [e["action"] for e in people.profile(db, LIISA)["events"]]


def test_a_person_who_left_one_topic_only_is_still_importable_to_a_new_one(cli, db, workdir):
    """The mark is for "everything" only: leaving one topic says nothing about others."""
    cli.ok("topics", "add", OLD, "--name", "Yhteisövaikuttavuus")
    cli.ok("subscribers", "add", LIISA, "-t", OLD, "--confirmed")
    cli.ok("subscribers", "unsubscribe", LIISA, "-t", OLD)
    cli.ok("topics", "add", NEW, "--name", "Lapset ja nuoret")
    listing = workdir / "uusi.csv"
    listing.write_text(f"email\n{LIISA}\n", encoding="utf-8")
    cli.ok("subscribers", "import", str(listing), "-t", NEW, "--confirmed")
    assert status(db, NEW) == "confirmed" and status(db, OLD) == "unsubscribed"
