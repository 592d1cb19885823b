"""Which topics the public pages offer, and removing a stray topic that a feed tag created."""

from __future__ import annotations

import json

from newsletter import links
from newsletter.audience import subscribers
from newsletter.config import Settings
from newsletter.content import topics
from newsletter.store.db import token_key
from tests.conftest import SmtpSink
from tests.web_helpers import Client, LiveServer, csrf_of, web_settings


def _ids(db) -> dict[str, int]:
    return {t.slug: t.id for t in topics.all_topics(db)}


def test_hidden_topics_leave_the_sign_up_page_but_not_their_subscribers(
    cli, db, settings: Settings, smtp_sink: SmtpSink
) -> None:
    topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus")
    topics.ensure_topic(db, "Säätiö")  # what a feed's tag creates
    tid = _ids(db)["saatio"]
    member = subscribers.add(db, "a@example.fi", topic_ids=[tid]).subscriber_id
    cli.ok("topics", "hide", "Säätiö")
    row = next(
        line for line in cli.ok("topics", "list").stdout.splitlines() if line.startswith("saatio")
    )
    assert row.split()[-1] == "hidden"
    assert [t["slug"] for t in json.loads(cli.ok("topics", "list", "--json").stdout)] == [
        "saatio",
        "yhteisovaikuttavuus",
    ]
    assert subscribers.count_recipients(db, [tid]) == 1  # hiding changes nobody's mail

    with LiveServer(web_settings(settings, smtp_sink)) as server:
        client = Client(server.url)
        page = client.get("/subscribe")
        assert 'value="yhteisovaikuttavuus"' in page.body
        assert 'value="saatio"' not in page.body
        # Posting the hidden slug by hand subscribes nobody to it.
        form = {"csrf": csrf_of(page.body), "email": "b@example.fi", "topics": ["saatio"]}
        client.post("/subscribe", form=form)
        server.wait_mail_queue()
        assert subscribers.count_recipients(db, [tid]) == 1
        assert (
            db.execute("SELECT COUNT(*) FROM subscriptions WHERE topic_id = ?", [tid]).fetchone()[0]
            == 1
        )
        # The member still sees the hidden topic on their preferences page, to leave it.
        url = links.preferences_url(server.settings, token_key(db, settings.secret), member)
        prefs = client.get(url)
        assert prefs.status == 200 and "Säätiö" in prefs.body

    cli.ok("topics", "unhide", "saatio")
    assert "(hidden" not in cli.ok("topics", "list").stdout


def test_remove_deletes_only_unused_topics(cli, db) -> None:
    topics.ensure_topic(db, "Uusi Kampanja")
    topics.add_topic(db, "vaikuttavuus", "Vaikuttavuus")
    subscribers.add(db, "a@example.fi", topic_ids=[_ids(db)["vaikuttavuus"]])
    cli.ok("topics", "remove", "uusi kampanja")
    assert "uusi-kampanja" not in _ids(db)
    refused = cli("topics", "remove", "vaikuttavuus")
    assert refused.exit_code == 1
    assert "hide it from the sign-up page instead" in refused.stderr
    assert "vaikuttavuus" in _ids(db)
