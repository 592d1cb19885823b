"""``newsletter serve`` over real HTTP: waitress on a loopback port, mail over real SMTP."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
from conftest import SmtpSink
from web_helpers import (
    Client,
    LiveServer,
    confirm_link,
    csrf_of,
    html_part,
    list_unsubscribe_url,
    text_part,
    wait_for_mail,
    web_settings,
)

from newsletter import links, tokens
from newsletter.audience import confirmations, subscribers
from newsletter.config import LANGUAGES, Settings
from newsletter.content import topics
from newsletter.errors import ConfigError, NewsletterError
from newsletter.mail import message, smtp
from newsletter.store.db import open_db, token_key
from newsletter.web import check_base_url, ratelimit
from newsletter.web.strings import STRINGS

LIISA = "liisa.virtanen@example.fi"


@pytest.fixture
def site(settings: Settings, smtp_sink: SmtpSink, db):
    """Two topics, and the web service running against the test database."""
    topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus")
    topics.add_topic(db, "lapset-ja-nuoret", "Lapset ja nuoret")
    config = web_settings(settings, smtp_sink)
    with LiveServer(config) as server:
        yield server


def topic_id(db, slug: str) -> int:
    found = topics.get_by_slug(db, slug)
    assert found is not None
    return found.id


def subscription(db, email: str, slug: str) -> str | None:
    row = db.execute(
        "SELECT sub.status FROM subscriptions sub JOIN subscribers s ON s.id = sub.subscriber_id"
        " JOIN topics t ON t.id = sub.topic_id WHERE s.email_key = ? AND t.slug = ?",
        [email.casefold(), slug],
    ).fetchone()
    return row[0] if row else None


def events(db, action: str | None = None) -> list[dict]:
    sql = "SELECT * FROM events" + (" WHERE action = ?" if action else "") + " ORDER BY id"
    return list(db.query(sql, [action] if action else []))


def confirmed_reader(db, email: str = LIISA, slug: str = "yhteisovaikuttavuus") -> int:
    return subscribers.add(
        db, email, name="Liisa Virtanen", topic_ids=[topic_id(db, slug)], status="confirmed"
    ).subscriber_id


def sign_up(server: LiveServer, email: str, slugs: list[str], **fields) -> tuple[Client, object]:
    client = Client(server.url)
    page = client.get("/subscribe")
    assert page.status == 200
    form = {"csrf": csrf_of(page.body), "email": email, "topics": slugs, **fields}
    return client, client.post("/subscribe", form=form)


# One-click unsubscribe --------------------------------------------------------------


def test_one_click_post_from_a_received_list_unsubscribe_header(site, db, smtp_sink) -> None:
    settings = site.settings
    sid = confirmed_reader(db)
    tid = topic_id(db, "yhteisovaikuttavuus")
    key = token_key(db, settings.secret)
    url = links.unsubscribe_url(settings, key, sid, tid)
    edition = message.EditionMessage(
        settings,
        subject="Yhteisövaikuttavuus 15.08.2025",
        html='<p>Uutiskirje</p><p><a href="%%UNSUBSCRIBE_URL%%">Peru tilaus</a></p>',
        text="Uutiskirje\n\nPeru tilaus: %%UNSUBSCRIBE_URL%%\n",
        list_id=message.list_id(settings, ["yhteisovaikuttavuus"]),
    )
    data, _ = edition.render(
        to_email=LIISA,
        to_name="Liisa Virtanen",
        unsubscribe_url=url,
        unsubscribe_mailto=links.unsubscribe_mailto(settings, key, sid, tid),
    )
    smtp.send_one(settings, settings.sender_address, [LIISA], data)
    received = wait_for_mail(smtp_sink, LIISA)[0].message
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header_url = list_unsubscribe_url(received)
    assert header_url == url

    # What a mailbox provider sends: no cookie, no CSRF token, the exact RFC 8058 body.
    client = Client(site.url)
    reply = client.post(
        header_url,
        body=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200
    assert reply.header("Location") is None
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "unsubscribed"
    assert [e["source"] for e in events(db, "unsubscribe")] == ["one-click"]
    assert subscribers.count_recipients(db, [tid]) == 0

    # A second request is just as fine and logs nothing new.
    again = client.post(
        header_url,
        body=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert again.status == 200
    assert len(events(db, "unsubscribe")) == 1


def test_get_shows_one_button_and_changes_nothing(site, db) -> None:
    sid = confirmed_reader(db)
    key = token_key(db, site.settings.secret)
    url = links.unsubscribe_url(site.settings, key, sid, topic_id(db, "yhteisovaikuttavuus"))
    client = Client(site.url)
    for _ in range(3):  # mail scanners may open a link several times
        page = client.get(url)
        assert page.status == 200
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "confirmed"
    assert events(db, "unsubscribe") == []
    assert page.body.count("<button") == 1
    assert re.search(r'<form method="post">', page.body)
    assert "Yhteisövaikuttavuus" in page.body
    assert '<html lang="fi">' in page.body
    assert re.search(r'href="/p/[^"]+"', page.body), "no link to the preferences page"
    assert LIISA not in page.body


def test_unsubscribe_button_posts_with_csrf(site, db) -> None:
    sid = confirmed_reader(db)
    key = token_key(db, site.settings.secret)
    url = links.unsubscribe_url(site.settings, key, sid, topic_id(db, "yhteisovaikuttavuus"))
    client = Client(site.url)
    page = client.get(url)

    # Without the form token (a forged cross-site post) nothing happens.
    refused = client.post(url, form={"go": "1"})
    assert refused.status == 403
    stranger = Client(site.url)
    assert stranger.post(url, form={"csrf": csrf_of(page.body)}).status == 403
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "confirmed"

    done = client.post(url, form={"csrf": csrf_of(page.body)})
    assert done.status == 200
    assert "Et saa enää uutiskirjettä aiheesta Yhteisövaikuttavuus" in done.body
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "unsubscribed"
    assert [e["source"] for e in events(db, "unsubscribe")] == ["web"]
    # Twice is fine; an already-unsubscribed link says so on GET.
    assert client.post(url, form={"csrf": csrf_of(page.body)}).status == 200
    assert "Tilaus on peruttu" in client.get(url).body
    assert len(events(db, "unsubscribe")) == 1


def test_forged_altered_and_malformed_tokens_change_nothing(site, db) -> None:
    sid = confirmed_reader(db)
    tid = topic_id(db, "yhteisovaikuttavuus")
    key = token_key(db, site.settings.secret)
    good = links.unsubscribe_token(key, sid, tid)
    body, mac = good.split(".")
    other = topics.get_by_slug(db, "lapset-ja-nuoret")
    assert other is not None
    bad_tokens = [
        f"{body}.{'A' * len(mac)}",  # forged MAC
        f"{tokens.make(key, 'unsub', sid, other.id).split('.')[0]}.{mac}",  # altered topic
        tokens.make(b"another key" * 3, "unsub", sid, tid),  # signed with another key
        tokens.make(key, links.PREFERENCES, sid),  # a token for another purpose
        "not-a-token",
        "x" * 300,
        "",
    ]
    client = Client(site.url)
    before = len(events(db))
    for bad in bad_tokens:
        for reply in (
            client.get(f"/u/{bad}"),
            client.post(
                f"/u/{bad}",
                body=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
        ):
            assert reply.status in (400, 404), bad
    # Each page takes only tokens made for it: the genuine unsubscribe token is refused too.
    for bad in [good, *bad_tokens[:3], *bad_tokens[4:]]:
        assert client.get(f"/p/{bad}").status in (400, 404), bad
        assert client.get(f"/p/{bad}/erase").status in (400, 404), bad
        assert client.get(f"/confirm/{bad}").status in (400, 404), bad
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "confirmed"
    assert len(events(db)) == before


def test_one_click_for_an_erased_person_or_a_test_send_is_harmless(site, db) -> None:
    key = token_key(db, site.settings.secret)
    tid = topic_id(db, "yhteisovaikuttavuus")
    client = Client(site.url)
    url = links.unsubscribe_url(site.settings, key, 0, tid)  # the dummy of test sends
    reply = client.post(url, form={"List-Unsubscribe": "One-Click"})
    assert reply.status == 200
    assert "Tällä linkillä ei ole voimassa olevaa tilausta" in client.get(url).body
    assert events(db) == []


# Sign-up and confirmation ------------------------------------------------------------


def test_sign_up_mail_confirm_flow(site, db, smtp_sink) -> None:
    client, reply = sign_up(
        site,
        LIISA,
        ["yhteisovaikuttavuus", "lapset-ja-nuoret"],
        name="Liisa Virtanen",
        lang="sv",
    )
    assert reply.status == 200
    assert "Kontrollera din e-post" in reply.body  # the page follows the chosen language
    assert LIISA not in reply.body
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "unconfirmed"
    assert subscription(db, LIISA, "lapset-ja-nuoret") == "unconfirmed"
    person = subscribers.find(db, LIISA)
    assert person is not None
    assert (person["name"], person["lang"]) == ("Liisa Virtanen", "sv")
    assert subscribers.count_recipients(db, [topic_id(db, "yhteisovaikuttavuus")]) == 0

    mail = wait_for_mail(smtp_sink, LIISA)[0].message
    assert "Bekräfta" in str(mail["Subject"])
    assert "Yhteisövaikuttavuus" in text_part(mail)
    link = confirm_link(mail)
    assert link in html_part(mail).replace("&amp;", "&")
    assert link.startswith(site.settings.base_url + "/confirm/")

    # Opening the link (as a mail scanner would) confirms nothing yet.
    page = client.get(link)
    assert page.status == 200
    assert '<html lang="sv">' in page.body
    assert "Lapset ja nuoret" in page.body and page.body.count("<button") == 1
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "unconfirmed"

    done = client.post(link, form={"csrf": csrf_of(page.body)})
    assert done.status == 200
    assert "Tack, prenumerationen är bekräftad" in done.body
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "confirmed"
    assert subscription(db, LIISA, "lapset-ja-nuoret") == "confirmed"
    assert {e["source"] for e in events(db, "confirm")} == {"web"}
    assert subscribers.count_recipients(db, [topic_id(db, "yhteisovaikuttavuus")]) == 1
    # Pressing it again is harmless.
    assert client.post(link, form={"csrf": csrf_of(page.body)}).status == 200
    assert len(events(db, "confirm")) == 2


def test_the_confirmation_mail_never_carries_text_typed_into_the_form(site, db, smtp_sink) -> None:
    """Else the form would mail any chosen text to any address (the name shows in To)."""
    spam = "Osta halpaa osoitteesta evil.example"
    sign_up(site, LIISA, ["yhteisovaikuttavuus"], name=spam)
    mail = wait_for_mail(smtp_sink, LIISA)[0].message
    assert str(mail["To"]) == LIISA
    assert "evil.example" not in mail.as_string()


def test_topic_query_preselects_and_single_language_page(site, db) -> None:
    client = Client(site.url)
    page = client.get("/subscribe?topic=lapset-ja-nuoret", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in page.body
    assert re.search(r'value="lapset-ja-nuoret"\s+checked', page.body)
    assert not re.search(r'value="yhteisovaikuttavuus"\s+checked', page.body)
    assert "<fieldset" in page.body and "<legend>Topics</legend>" in page.body
    assert 'for="email"' in page.body and 'name="viewport"' in page.body
    default = client.get("/subscribe")
    assert '<html lang="fi">' in default.body  # settings.default_lang
    swedish = client.get("/subscribe", headers={"Accept-Language": "de, sv-FI;q=0.8"})
    assert '<html lang="sv">' in swedish.body


def test_invalid_sign_up_input_gets_the_form_back(site, db, smtp_sink) -> None:
    _, reply = sign_up(site, "ei-osoite", ["yhteisovaikuttavuus"])
    assert reply.status == 400
    assert "Tarkista sähköpostiosoite" in reply.body and 'aria-invalid="true"' in reply.body
    _, reply = sign_up(site, LIISA, [])
    assert reply.status == 400 and "Valitse vähintään yksi aihe" in reply.body
    _, reply = sign_up(site, "liisa@example.fi\r\nBcc: x@example.com", ["yhteisovaikuttavuus"])
    assert reply.status == 400
    assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 0
    site.wait_mail_queue()
    assert smtp_sink.messages == []


def test_sign_up_never_reveals_a_known_address(site, db, smtp_sink) -> None:
    confirmed_reader(db, "tunnettu@example.fi")
    _, known = sign_up(site, "tunnettu@example.fi", ["yhteisovaikuttavuus"], name="Joku Muu")
    _, unknown = sign_up(site, "uusi@example.fi", ["yhteisovaikuttavuus"])
    assert known.status == unknown.status == 200
    assert known.body == unknown.body
    # The known person is neither demoted to unconfirmed nor renamed by a stranger.
    assert subscription(db, "tunnettu@example.fi", "yhteisovaikuttavuus") == "confirmed"
    person = subscribers.find(db, "tunnettu@example.fi")
    assert person is not None and person["name"] == "Liisa Virtanen"
    wait_for_mail(smtp_sink, "uusi@example.fi")
    site.wait_mail_queue()
    assert smtp_sink.to("tunnettu@example.fi") == []  # nothing to confirm for them


def test_a_suppressed_address_comes_back_only_by_confirming(site, db, smtp_sink) -> None:
    confirmed_reader(db)
    subscribers.erase(db, LIISA, source="cli")
    assert subscribers.is_suppressed(db, LIISA)
    client, reply = sign_up(site, LIISA, ["yhteisovaikuttavuus"])
    assert reply.status == 200
    tid = topic_id(db, "yhteisovaikuttavuus")
    assert subscribers.count_recipients(db, [tid]) == 0
    assert subscribers.is_suppressed(db, LIISA)  # still, until the person confirms
    link = confirm_link(wait_for_mail(smtp_sink, LIISA)[0].message)
    page = client.get(link)
    client.post(link, form={"csrf": csrf_of(page.body)})
    assert not subscribers.is_suppressed(db, LIISA)
    assert subscribers.count_recipients(db, [tid]) == 1


def test_bounced_person_is_not_mailed_by_a_sign_up(site, db, smtp_sink) -> None:
    sid = confirmed_reader(db)
    subscribers.set_status(db, sid, "bounced", "bounce")
    _, reply = sign_up(site, LIISA, ["lapset-ja-nuoret"])
    assert reply.status == 200 and "Tarkista sähköpostisi" in reply.body
    site.wait_mail_queue()
    assert smtp_sink.to(LIISA) == []
    assert subscription(db, LIISA, "lapset-ja-nuoret") is None


def test_expired_and_forged_confirmation_links(site, db, smtp_sink) -> None:
    sid = subscribers.add(
        db,
        LIISA,
        topic_ids=[topic_id(db, "yhteisovaikuttavuus")],
        status="unconfirmed",
        source="web",
        lift_suppression_=False,
    ).subscriber_id
    key = token_key(db, site.settings.secret)
    expired = links.confirm_url(site.settings, key, sid, int(time.time()) - 60)
    client = Client(site.url)
    page = client.get(expired)
    assert page.status == 400
    assert "Vahvistuslinkki on vanhentunut" in page.body
    assert 'href="/subscribe"' in page.body
    fresh = client.get("/subscribe")
    assert client.post(expired, form={"csrf": csrf_of(fresh.body)}).status == 400
    # An expiry pushed into the future by hand breaks the signature.
    mac = expired.rsplit(".", 1)[1]
    later = tokens.make(key, links.CONFIRM, sid, expires_at=int(time.time()) + 3600)
    moved = f"{later.split('.')[0]}.{mac}"
    assert client.get(f"/confirm/{moved}").status == 404
    assert client.post(f"/confirm/{moved}", form={"csrf": csrf_of(fresh.body)}).status == 404
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "unconfirmed"


def test_embedded_form_from_the_organisation_website(site, db, smtp_sink) -> None:
    # No cookie, no token: a plain HTML form on https://www.example.fi posting here.
    client = Client(site.url)
    form = {"email": "upotettu@example.fi", "topics": ["yhteisovaikuttavuus"], "lang": "fi"}
    ok = client.post("/subscribe", form=form, headers={"Origin": "https://www.example.fi"})
    assert ok.status == 200 and "Tarkista sähköpostisi" in ok.body
    via_referer = client.post(
        "/subscribe",
        form={**form, "email": "toinen@example.fi"},
        headers={"Referer": "https://www.example.fi/uutiskirje"},
    )
    assert via_referer.status == 200
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {}):
        refused = client.post(
            "/subscribe", form={**form, "email": "vieras@example.fi"}, headers=headers
        )
        assert refused.status == 403, headers
    assert subscribers.find(db, "vieras@example.fi") is None
    wait_for_mail(smtp_sink, "upotettu@example.fi")


# Rate limiting -----------------------------------------------------------------------


@pytest.fixture
def limited(settings: Settings, smtp_sink: SmtpSink, db):
    """The service behind a 'reverse proxy' on loopback, with a limit of 2 an hour."""
    topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus")
    config = web_settings(settings, smtp_sink, signup_limit_per_hour=2)
    with LiveServer(config, trusted_proxy="127.0.0.1") as server:
        yield server


def proxied_sign_up(server: LiveServer, email: str, client_ip: str):
    client = Client(server.url)
    page = client.get("/subscribe")
    form = {"csrf": csrf_of(page.body), "email": email, "topics": ["yhteisovaikuttavuus"]}
    return client.post("/subscribe", form=form, headers={"X-Forwarded-For": client_ip})


def test_rate_limit_per_client_ip(limited, db) -> None:
    replies = [proxied_sign_up(limited, f"lukija{n}@example.fi", "198.51.100.7") for n in range(3)]
    assert [r.status for r in replies] == [200, 200, 429]
    assert "Liian monta yritystä" in replies[2].body
    assert subscribers.find(db, "lukija2@example.fi") is None
    # Another client is unaffected.
    assert proxied_sign_up(limited, "lukija3@example.fi", "198.51.100.8").status == 200
    # IPv6 clients are limited per /64: changing the last bits does not help.
    v6 = [proxied_sign_up(limited, f"v6-{n}@example.fi", f"2001:db8::{n + 1}") for n in range(3)]
    assert [r.status for r in v6] == [200, 200, 429]


def test_rate_limit_per_address_looks_the_same(limited, db, smtp_sink) -> None:
    replies = [proxied_sign_up(limited, LIISA, f"203.0.113.{n}") for n in range(4)]
    assert {r.status for r in replies} == {200}
    assert len({r.body for r in replies}) == 1  # over the limit: the same neutral page
    limited.wait_mail_queue()
    # Two sign-ups were within the limit, but one confirmation an hour is mailed at most.
    assert len(smtp_sink.to(LIISA)) == 1
    # Only keyed hashes are stored, never the address or the client IP.
    dump = "\n".join(str(tuple(row)) for row in db.execute("SELECT * FROM web_signup_attempts"))
    assert "liisa" not in dump and "203.0.113" not in dump
    assert dump.count("'email'") == 4


def test_rate_limit_holds_across_threads_and_connections(settings: Settings) -> None:
    """Concurrent attempts, each on its own connection, never exceed the limit."""
    open_db(settings.db).close()
    results: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        conn = open_db(settings.db)
        allowed = ratelimit.allow_ip(conn, "192.0.2.1", 3)
        conn.close()
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 3
    # A restart (new connection) still remembers.
    again = open_db(settings.db)
    assert ratelimit.allow_ip(again, "192.0.2.1", 3) is False
    assert ratelimit.allow_ip(again, "192.0.2.2", 3) is True


# Preferences and erasure -------------------------------------------------------------


def preferences_url(server: LiveServer, db, sid: int) -> str:
    return links.preferences_url(server.settings, token_key(db, server.settings.secret), sid)


def test_preferences_change_topics_and_language(site, db) -> None:
    sid = confirmed_reader(db)
    url = preferences_url(site, db, sid)
    client = Client(site.url)
    page = client.get(url)
    assert page.status == 200
    assert LIISA not in page.body and "Liisa" not in page.body
    assert re.search(r'value="yhteisovaikuttavuus"\s+checked', page.body)
    assert not re.search(r'value="lapset-ja-nuoret"\s+checked', page.body)

    saved = client.post(
        url,
        form={
            "csrf": csrf_of(page.body),
            "action": "save",
            "topics": ["lapset-ja-nuoret"],
            "lang": "en",
        },
    )
    assert saved.status == 200
    assert '<html lang="en">' in saved.body and "Your settings have been saved" in saved.body
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "unsubscribed"
    assert subscription(db, LIISA, "lapset-ja-nuoret") == "confirmed"
    person = subscribers.get(db, sid)
    assert person is not None and person["lang"] == "en"
    assert {e["source"] for e in events(db) if e["action"] != "create"} - {"cli"} == {"web"}

    everything = client.post(url, form={"csrf": csrf_of(saved.body), "action": "unsubscribe_all"})
    assert "All your subscriptions have been cancelled" in everything.body
    assert subscription(db, LIISA, "lapset-ja-nuoret") == "unsubscribed"
    # Without the form token nothing changes.
    assert client.post(url, form={"action": "save", "topics": ["lapset-ja-nuoret"]}).status == 403
    assert subscription(db, LIISA, "lapset-ja-nuoret") == "unsubscribed"


def test_erasure_from_preferences_has_a_confirmation_step(site, db) -> None:
    sid = confirmed_reader(db)
    url = preferences_url(site, db, sid)
    client = Client(site.url)
    prefs = client.get(url)
    erase_url = re.search(r'href="(/p/[^"]+/erase)"', prefs.body)
    assert erase_url, "no erase link on the preferences page"
    step = client.get(erase_url.group(1))
    assert step.status == 200 and "Poistetaanko tietosi pysyvästi?" in step.body
    assert subscribers.get(db, sid) is not None  # looking changes nothing
    assert client.post(erase_url.group(1), form={}).status == 403
    done = client.post(erase_url.group(1), form={"csrf": csrf_of(step.body)})
    assert done.status == 200 and "Tietosi on poistettu" in done.body
    assert subscribers.find(db, LIISA) is None
    assert subscribers.is_suppressed(db, LIISA)
    assert client.get(url).status == 404


# Safety ------------------------------------------------------------------------------


def test_security_headers_and_cookie_flags(site) -> None:
    reply = Client(site.url).get("/subscribe")
    csp = reply.header("Content-Security-Policy") or ""
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.header("Referrer-Policy") == "no-referrer"
    assert reply.header("X-Frame-Options") == "DENY"
    assert reply.header("Strict-Transport-Security") is None  # plain http on loopback
    cookie = reply.header("Set-Cookie") or ""
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    css = Client(site.url).get("/static/style.css")
    assert css.status == 200 and "max-width: 600px" in css.body
    assert css.header("X-Content-Type-Options") == "nosniff"


def test_https_base_url_adds_hsts_and_host_only_secure_cookie(settings, db) -> None:
    assert settings.base_url == "https://uutiskirje.example.fi"  # behind a TLS proxy
    with LiveServer(settings) as server:
        reply = Client(server.url).get("/subscribe")
    assert reply.header("Strict-Transport-Security") == "max-age=31536000"
    cookie = reply.header("Set-Cookie") or ""
    assert cookie.startswith("__Host-nl_csrf=") and "Secure" in cookie and "Path=/" in cookie


def test_request_bodies_are_size_limited(site, db) -> None:
    client = Client(site.url)
    page = client.get("/subscribe")
    huge = {"csrf": csrf_of(page.body), "email": "a@example.fi", "name": "x" * 40_000}
    reply = client.post("/subscribe", form=huge)
    assert reply.status == 413
    assert db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 0


def test_check_base_url_rules(settings) -> None:
    assert check_base_url(settings.with_overrides(base_url="https://uutiskirje.example.fi")) is None
    warning = check_base_url(settings.with_overrides(base_url="http://127.0.0.1:8080"))
    assert warning and "loopback" in warning
    assert check_base_url(settings.with_overrides(base_url="http://localhost:8080"))
    with pytest.raises(ConfigError, match="must use https"):
        check_base_url(settings.with_overrides(base_url="http://uutiskirje.example.fi"))


def test_serve_refuses_plain_http_on_a_public_host(cli) -> None:
    result = cli("serve", env={"NEWSLETTER_BASE_URL": "http://uutiskirje.example.fi"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "https" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_help_has_an_example(cli) -> None:
    assert "Example:" in cli.ok("serve", "--help").stdout
    assert "Example:" in cli.ok("unsubscribes", "import", "--help").stdout


# The service functions without HTTP ------------------------------------------------


def test_send_confirmations_mails_only_unconfirmed_people(settings, db, smtp_sink) -> None:
    config = web_settings(settings, smtp_sink)
    tid = topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus").id
    waiting = [
        subscribers.add(db, f"odottaa{n}@example.fi", topic_ids=[tid], status="unconfirmed")
        for n in range(2)
    ]
    done = subscribers.add(db, "valmis@example.fi", topic_ids=[tid], status="confirmed")
    ids = [r.subscriber_id for r in [*waiting, done]]
    assert confirmations.send_confirmations(db, config, ids) == confirmations.Mailed(2, 0)
    assert len(smtp_sink.messages) == 2
    assert smtp_sink.to("valmis@example.fi") == []
    sent = [e for e in events(db) if e["action"] == "confirmation-sent"]
    assert len(sent) == 2


def test_send_confirmations_skips_people_whose_request_is_still_valid(
    settings, db, smtp_sink
) -> None:
    config = web_settings(settings, smtp_sink)
    tid = topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus").id
    ids = [
        subscribers.add(
            db, f"odottaa{n}@example.fi", topic_ids=[tid], status="unconfirmed"
        ).subscriber_id
        for n in range(3)
    ]
    assert confirmations.send_confirmations(db, config, ids[:2]) == confirmations.Mailed(2, 0)
    assert confirmations.has_valid_request(db, config, ids[0])
    assert not confirmations.has_valid_request(db, config, ids[2])
    assert confirmations.send_confirmations(db, config, ids) == confirmations.Mailed(1, 2)
    assert len(smtp_sink.messages) == 3
    # The web sign-up path mails a person again, but not twice within the interval.
    assert not confirmations.request_confirmation(db, config, ids[0])
    assert len(smtp_sink.to("odottaa0@example.fi")) == 1
    no_interval = config.with_overrides(confirm_interval_minutes=0)
    assert confirmations.request_confirmation(db, no_interval, ids[0])
    assert len(smtp_sink.to("odottaa0@example.fi")) == 2
    # A zero-day validity means no request is still valid.
    expired = config.with_overrides(confirm_days=0)
    assert not confirmations.has_valid_request(db, expired, ids[0])


def test_send_confirmations_refuses_a_plain_http_base_url(settings, db, smtp_sink) -> None:
    config = web_settings(settings, smtp_sink).with_overrides(
        base_url="http://uutiskirje.example.fi"
    )
    tid = topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus").id
    sid = subscribers.add(db, "odottaa@example.fi", topic_ids=[tid], status="unconfirmed")
    with pytest.raises(ConfigError, match="must use https"):
        confirmations.send_confirmations(db, config, [sid.subscriber_id])
    assert smtp_sink.messages == []
    assert events(db, "confirmation-sent") == []


def test_base_url_rule_lives_in_the_core_and_is_shared_with_serve() -> None:
    from newsletter.web import server

    assert check_base_url is links.check_base_url and server.is_loopback is links.is_loopback
    assert links.is_loopback("127.0.0.5") and links.is_loopback("[::1]")
    assert links.is_loopback("app.localhost") and not links.is_loopback("example.fi")


def test_send_confirmations_gets_past_a_refused_address(settings, db, smtp_sink) -> None:
    """One address the server refuses must not stop the others, on this run or a rerun."""
    config = web_settings(settings, smtp_sink)
    tid = topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus").id
    people = ["eka@example.fi", "ei.ole@example.fi", "kolmas@example.fi"]
    ids = [
        subscribers.add(db, email, topic_ids=[tid], status="unconfirmed").subscriber_id
        for email in people
    ]
    smtp_sink.reply = lambda env: "550 5.1.1 no such user" if "ei.ole" in env.rcpt_tos[0] else None
    with pytest.raises(NewsletterError, match=r"2 of 3 .* refused 1 \(first reply: 550 5\.1\.1"):
        confirmations.send_confirmations(db, config, ids)
    assert smtp_sink.to("eka@example.fi") and smtp_sink.to("kolmas@example.fi")
    refused = events(db, "confirmation-refused")
    assert [e["subscriber_id"] for e in refused] == [ids[1]]


def test_service_under_a_path_prefix(settings: Settings, db) -> None:
    """base_url with a path, as behind a proxy that forwards /uutiskirje/ unchanged."""
    tid = topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus").id
    config = web_settings(settings)
    config = config.with_overrides(base_url=config.base_url + "/uutiskirje")
    sid = confirmed_reader(db)
    with LiveServer(config) as server:
        client = Client(server.url)
        page = client.get("/uutiskirje/subscribe")
        assert page.status == 200
        assert 'action="/uutiskirje/subscribe?lang=fi"' in page.body
        assert client.get("/uutiskirje/static/style.css").status == 200
        assert client.get("/uutiskirje/").header("Location") == "/uutiskirje/subscribe"
        assert client.get("/uutiskirje/healthz").body == "ok\n"
        url = links.unsubscribe_url(config, token_key(db, config.secret), sid, tid)
        assert url.startswith(f"{server.url}/uutiskirje/u/")
        assert client.post(url, form={"List-Unsubscribe": "One-Click"}).status == 200
    assert subscription(db, LIISA, "yhteisovaikuttavuus") == "unsubscribed"


def test_refused_confirmation_mail_is_logged_without_the_address(
    site, db, smtp_sink, caplog
) -> None:
    smtp_sink.reply = lambda envelope: "550 5.1.1 <ei.ole@example.fi>: no such user"
    with caplog.at_level("ERROR", logger="newsletter.web"):
        _, reply = sign_up(site, "ei.ole@example.fi", ["yhteisovaikuttavuus"])
        site.wait_mail_queue()
    assert reply.status == 200 and "Tarkista sähköpostisi" in reply.body
    failures = [r.getMessage() for r in caplog.records if r.name == "newsletter.web"]
    assert len(failures) == 1 and "failed" in failures[0]
    assert "ei.ole@example.fi" not in failures[0]
    # The sign-up is kept (unconfirmed): repeating it sends a new request.
    assert subscription(db, "ei.ole@example.fi", "yhteisovaikuttavuus") == "unconfirmed"


def test_concurrent_requests_on_all_threads_all_succeed(settings, smtp_sink, db) -> None:
    """Waitress threads and the mail thread write at once: none may hit 'database is locked'."""
    tid = topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus").id
    config = web_settings(settings, smtp_sink, signup_limit_per_hour=100)
    key = token_key(db, config.secret)
    urls = [
        links.unsubscribe_url(config, key, confirmed_reader(db, f"lukija{n}@example.fi"), tid)
        for n in range(16)
    ]
    statuses: list[int] = []
    lock = threading.Lock()

    with LiveServer(config) as server:

        def one_click(url: str) -> None:
            reply = Client(server.url).post(url, form={"List-Unsubscribe": "One-Click"})
            with lock:
                statuses.append(reply.status)

        def signup(n: int) -> None:
            _, reply = sign_up(server, f"uusi{n}@example.fi", ["yhteisovaikuttavuus"])
            with lock:
                statuses.append(reply.status)

        workers = [threading.Thread(target=one_click, args=(url,)) for url in urls]
        workers += [threading.Thread(target=signup, args=(n,)) for n in range(16)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        server.wait_mail_queue()
    assert statuses == [200] * 32
    assert subscribers.count_recipients(db, [tid]) == 0
    assert len(smtp_sink.messages) == 16


def test_serve_on_a_busy_port_is_a_one_line_error(cli, settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}"}
        result = cli("serve", "--port", str(port), env=env)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}")


def test_every_page_and_mail_text_exists_in_every_language() -> None:
    # text() falls back to English, so a missing translation would go unnoticed on a page.
    for table in (STRINGS, confirmations.MAIL_TEXT):
        for key, entry in table.items():
            assert set(entry) == set(LANGUAGES), key
            assert all(value.strip() for value in entry.values()), key
