"""Web versions of sent editions and the per-topic archive with its Atom feed, on the real app.

Editions are built from the packaged template and delivered over real SMTP to the loopback
sink; the "view in browser" link is read out of the message a subscriber received.
"""

from __future__ import annotations

import re
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path
from xml.etree import ElementTree

import pytest
from build_helpers import HELSINKI, TOPIC, TOPIC_SLUG, add_articles, sample_articles
from send_helpers import add_people, parts

from newsletter import links, tokens
from newsletter.content import archive, contacts, editions, topics
from newsletter.delivery import pipeline
from newsletter.errors import InvalidToken
from newsletter.mail import placeholders
from newsletter.store.db import token_key
from newsletter.web import create_app

BASE = datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)
ATOM = "{http://www.w3.org/2005/Atom}"


def build(db, settings, workdir: Path, **changes) -> int:
    options = {
        "topics": [TOPIC_SLUG],
        "since": "2025-08-01",
        "until": None,
        "limit": None,
        "subject": "Elokuun uutiset",
        "intro": "Hyvä lukija,\n\ntässä ovat kuukauden uutiset.",
        "lang": "fi",
        "template": None,
        "out": workdir / "editions",
    }
    options.update(changes)
    return editions.build(db, settings, **options).edition_id


@pytest.fixture
def mail_settings(settings, smtp_sink):
    return settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)


@pytest.fixture
def sent(db, mail_settings, smtp_sink, workdir: Path):
    """An edition delivered to three subscribers; (edition id, their messages)."""
    add_articles(db, sample_articles(BASE))
    topic = topics.resolve(db, TOPIC_SLUG)
    contacts.add(db, TOPIC_SLUG, name="Mari Hirvonen", email="mari.hirvonen@example.fi")
    people = add_people(db, topic.id, 3)
    edition_id = build(db, mail_settings, workdir)
    report = pipeline.send(db, mail_settings, edition_id)
    assert report.sent == 3
    received = {
        person: message_from_bytes(smtp_sink.to(person)[0].data, policy=policy.default)
        for person in people
    }
    return edition_id, received


@pytest.fixture
def client(mail_settings):
    return create_app(mail_settings).test_client()


def _view_in_browser(message) -> str:
    _, html = parts(message)
    found = re.search(r'<a href="([^"]+)"[^>]*>Näytä selaimessa</a>', html)
    assert found, "the message has no view-in-browser link"
    return found.group(1)


def test_every_message_links_the_same_public_web_version(sent, client, mail_settings) -> None:
    _, received = sent
    urls = {_view_in_browser(m) for m in received.values()}
    assert len(urls) == 1  # not personal: the same link in every message
    url = urls.pop()
    assert url.startswith(mail_settings.base_url + "/e/")
    for message in received.values():
        text, _ = parts(message)
        assert f"Näytä selaimessa: {url}" in text
    answer = client.get(url.removeprefix(mail_settings.base_url))
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "<title>Elokuun uutiset</title>" in page
    assert "Keski-Suomi liittyi" in page and "Mari Hirvonen" in page
    assert answer.headers["Cache-Control"].startswith("public")
    assert "X-Robots-Tag" not in answer.headers  # archived: it may be found
    assert "Set-Cookie" not in answer.headers
    # Its inline styles are allowed, scripts and forms are not.
    policy_header = answer.headers["Content-Security-Policy"]
    assert "style-src 'unsafe-inline'" in policy_header and "default-src 'none'" in policy_header


def test_web_version_holds_no_personal_link_or_value(sent, client, db, mail_settings) -> None:
    edition_id, received = sent
    url = _view_in_browser(next(iter(received.values())))
    page = client.get(url.removeprefix(mail_settings.base_url)).get_data(as_text=True)
    assert placeholders.remaining(page) == []
    for address, message in received.items():
        assert address not in page
        _, html = parts(message)
        # Every personal link of the message (unsubscribe, preferences) is absent.
        personal = re.findall(r'href="([^"]*/(?:u|p)/[^"]+)"', html)
        assert len(personal) >= 2, personal
        for link in personal:
            assert link not in page
    assert not re.search(r'href="[^"]*/(u|p)/', page)
    # No token of any personal purpose verifies anywhere in the page.
    key = token_key(db, mail_settings.secret)
    token = re.compile(r"[0-9a-z-]+\.[A-Za-z0-9_-]{16}")
    _, message_html = parts(next(iter(received.values())))
    in_message = set(token.findall(message_html))
    # The search finds the message's own tokens: the web link's and the personal ones.
    assert archive.web_token(key, edition_id) in in_message and len(in_message) >= 3
    for candidate in set(token.findall(page)):
        for purpose, count, expires in (
            (links.UNSUBSCRIBE, 2, False),
            (links.PREFERENCES, 1, False),
            (links.CONFIRM, 1, True),
        ):
            with pytest.raises(InvalidToken):
                tokens.check(key, purpose, candidate, count=count, expires=expires)
    # Instead of unsubscribe links it offers sign-up and the archive.
    assert f'href="{mail_settings.base_url}/subscribe?topic={TOPIC_SLUG}"' in page
    assert f'href="{mail_settings.base_url}/archive/{TOPIC_SLUG}"' in page


def test_drafts_forged_and_unknown_web_versions_are_not_found(
    db, client, mail_settings, workdir
) -> None:
    add_articles(db, sample_articles(BASE))
    draft = build(db, mail_settings, workdir)
    key = token_key(db, mail_settings.secret)
    assert client.get(archive.web_path(key, draft)).status_code == 404  # not sent yet
    assert client.get(archive.web_path(key, 99)).status_code == 404
    forged = archive.web_path(b"another key entirely", draft)
    assert client.get(forged).status_code == 404
    # A token for another purpose (an unsubscribe link's) opens no edition.
    assert client.get(f"/e/{tokens.make(key, 'unsub', draft, 1)}").status_code == 404
    assert client.get("/e/1").status_code == 404


def test_archive_lists_sent_editions_newest_first_with_a_feed(
    sent, client, db, mail_settings, workdir
) -> None:
    first, _ = sent
    draft = build(db, mail_settings, workdir, subject="Luonnos", since="2025-08-01")
    answer = client.get(f"/archive/{TOPIC_SLUG}", headers={"Accept-Language": "sv"})
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert '<html lang="sv">' in page  # the reader's language
    assert f"Tidigare nyhetsbrev: {TOPIC}" in page
    assert "Elokuun uutiset" in page and "Luonnos" not in page
    key = token_key(db, mail_settings.secret)
    assert archive.web_path(key, first) in page and archive.web_path(key, draft) not in page
    assert f'href="/archive/{TOPIC_SLUG}/feed.atom"' in page
    assert 'type="application/atom+xml"' in page
    assert "Set-Cookie" not in answer.headers

    feed = client.get(f"/archive/{TOPIC_SLUG}/feed.atom")
    assert feed.status_code == 200 and feed.mimetype == "application/atom+xml"
    root = ElementTree.fromstring(feed.get_data())
    assert root.tag == f"{ATOM}feed"
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["Elokuun uutiset"]
    link = entries[0].find(f"{ATOM}link").get("href")
    assert link == mail_settings.base_url + archive.web_path(key, first)
    assert entries[0].findtext(f"{ATOM}summary").startswith("Hyvä lukija")
    assert root.find(f"{ATOM}link[@rel='self']").get("href").endswith("/feed.atom")
    assert root.findtext(f"{ATOM}updated")


def test_a_topic_kept_out_of_the_archive_has_no_page_or_feed(
    sent, client, db, mail_settings, workdir
) -> None:
    _, received = sent
    archive.set_archived(db, TOPIC_SLUG, False)
    assert client.get(f"/archive/{TOPIC_SLUG}").status_code == 404
    assert client.get(f"/archive/{TOPIC_SLUG}/feed.atom").status_code == 404
    assert client.get("/archive/ei-ole").status_code == 404
    # Its sent edition's own link (in the mail) still works; new editions link no archive.
    url = _view_in_browser(next(iter(received.values())))
    kept_out = client.get(url.removeprefix(mail_settings.base_url))
    assert kept_out.status_code == 200
    assert kept_out.headers["X-Robots-Tag"] == "noindex, nofollow"
    later = build(db, mail_settings, workdir)
    assert "/archive/" not in editions.get(db, later).html
    # Back in the archive, a topic hidden from the sign-up page still has no public archive.
    archive.set_archived(db, TOPIC_SLUG, True)
    assert client.get(f"/archive/{TOPIC_SLUG}").status_code == 200
    topics.set_listed(db, TOPIC_SLUG, False)
    assert client.get(f"/archive/{TOPIC_SLUG}").status_code == 404
    assert client.get(f"/archive/{TOPIC_SLUG}/feed.atom").status_code == 404


def test_archive_text_is_escaped(db, client, mail_settings, workdir, smtp_sink) -> None:
    add_articles(db, sample_articles(BASE))
    topic = topics.resolve(db, TOPIC_SLUG)
    add_people(db, topic.id, 1)
    edition_id = build(db, mail_settings, workdir, subject="<script>alert(1)</script> & muut")
    pipeline.send(db, mail_settings, edition_id)
    page = client.get(f"/archive/{TOPIC_SLUG}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; muut" in page
    feed = ElementTree.fromstring(client.get(f"/archive/{TOPIC_SLUG}/feed.atom").get_data())
    titles = [e.findtext(f"{ATOM}title") for e in feed.findall(f"{ATOM}entry")]
    assert titles == ["<script>alert(1)</script> & muut"]
