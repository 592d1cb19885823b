"""``newsletter check`` and the blocking part every real ``send`` runs first.

Real SQLite, real MJML builds, the real SMTP sink, SpamAssassin where installed and a
loopback HTTP server for ``--links``.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from build_helpers import HELSINKI, TOPIC, TOPIC_SLUG, add_articles, sample_articles
from conftest import OWN_IDENTITY
from send_helpers import HTML, TEXT, add_people, make_edition, make_topic

from newsletter.content.articles import ArticleIn
from newsletter.delivery import checks, pipeline

BASE = datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)
# A configuration whose values are the organisation's own, not init's examples.
OWN = {
    "NEWSLETTER_ORG_NAME": "Lastensuojelun Keskusliitto",
    "NEWSLETTER_ORG_ADDRESS": "Armfeltintie 1, 00150 Helsinki",
    "NEWSLETTER_ORG_WEBSITE": "https://www.lskl.fi",
    "NEWSLETTER_ORG_EMAIL": "info@lskl.fi",
    "NEWSLETTER_FROM": "LSKL <uutiskirje@lskl.fi>",
    "NEWSLETTER_REPLY_TO": "info@lskl.fi",
    "NEWSLETTER_BASE_URL": "https://uutiskirje.lskl.fi",
}
OWN_SETTINGS = {
    "org_name": OWN["NEWSLETTER_ORG_NAME"],
    "org_address": OWN["NEWSLETTER_ORG_ADDRESS"],
    "org_website": OWN["NEWSLETTER_ORG_WEBSITE"],
    "org_email": OWN["NEWSLETTER_ORG_EMAIL"],
    "from_addr": OWN["NEWSLETTER_FROM"],
    "reply_to": OWN["NEWSLETTER_REPLY_TO"],
    "base_url": OWN["NEWSLETTER_BASE_URL"],
}


def _env(sink, **extra: str) -> dict[str, str]:
    return {
        **OWN,
        "NEWSLETTER_SMTP_HOST": sink.host,
        "NEWSLETTER_SMTP_PORT": str(sink.port),
        **extra,
    }


def _build(cli, db, env: dict[str, str]) -> int:
    add_articles(db, sample_articles(BASE))
    result = cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01", "--json", env=env)
    return json.loads(result.stdout)["edition"]


def _codes(result) -> dict[str, str]:
    return {f["code"]: f["level"] for f in json.loads(result.stdout)["findings"]}


def test_a_well_configured_edition_passes(cli, db, smtp_sink) -> None:
    env = _env(smtp_sink)
    edition = _build(cli, db, env)
    result = cli("check", str(edition), "--json", "--no-spam", env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["edition"] == edition and data["html_bytes"] > 10_000
    assert _codes(result) == {"dkim_off": "warn"}  # nothing else to say
    human = cli("check", str(edition), "--no-spam", env=env)
    assert human.exit_code == 0 and "nothing stops this edition" in human.stdout


def test_send_refuses_init_example_values_unless_forced(cli, db, smtp_sink, monkeypatch) -> None:
    topic = make_topic(db)
    add_people(db, topic, 2)
    edition = make_edition(db, [topic])
    env = {"NEWSLETTER_SMTP_HOST": smtp_sink.host, "NEWSLETTER_SMTP_PORT": str(smtp_sink.port)}
    # The cli fixture names its own sender; the rest (website, base_url ...) is init's.
    checked = cli("check", str(edition), "--json", "--no-spam", env=env)
    assert checked.exit_code == 1 and _codes(checked)["example_values"] == "force"
    assert "example_identity" not in _codes(checked)
    refused = cli("send", str(edition), "--yes", env=env)
    assert refused.exit_code == 1
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith(f"error: edition {edition} is not sent")
    assert "base_url" in line and "--force" in line
    assert smtp_sink.messages == [] and pipeline.status(db, edition)["status"] == "draft"
    cli.ok("send", str(edition), "--yes", "--force", env=env)
    assert len(smtp_sink.messages) == 2


def test_init_example_sender_is_never_forced(cli, db, smtp_sink, monkeypatch) -> None:
    topic = make_topic(db)
    add_people(db, topic, 2)
    edition = make_edition(db, [topic])
    for name in OWN_IDENTITY:  # every value as `init` wrote it, the identity too
        monkeypatch.delenv(name)
    env = {"NEWSLETTER_SMTP_HOST": smtp_sink.host, "NEWSLETTER_SMTP_PORT": str(smtp_sink.port)}
    checked = cli("check", str(edition), "--json", "--no-spam", env=env)
    assert checked.exit_code == 1 and _codes(checked)["example_identity"] == "block"
    for args in ((), ("--force",)):
        refused = cli("send", str(edition), "--yes", *args, env=env)
        assert refused.exit_code == 1, args
        line = refused.stderr.strip()
        assert len(line.splitlines()) == 1
        assert "organisation.name" in line and "mail.from" in line
    assert smtp_sink.messages == [] and pipeline.status(db, edition)["status"] == "draft"


def test_send_refuses_a_missing_postal_address(
    cli, db, smtp_sink, workdir: Path, monkeypatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_ORG_ADDRESS")  # the cli fixture's own address
    topic = make_topic(db)
    add_people(db, topic, 1)
    edition = make_edition(db, [topic])
    config = workdir / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'address = "Esimerkkikatu 1, 00100 Helsinki"\n', ""
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in _env(smtp_sink).items() if k != "NEWSLETTER_ORG_ADDRESS"}
    assert _codes(cli("check", str(edition), "--json", "--no-spam", env=env)) == {
        "postal_address_missing": "force",
        "dkim_off": "warn",
    }
    refused = cli("send", str(edition), "--yes", env=env)
    assert refused.exit_code == 1 and "no postal address" in refused.stderr
    assert smtp_sink.messages == []
    cli.ok("send", str(edition), "--yes", "--force", env=env)


def test_send_never_goes_without_an_unsubscribe_link(cli, db, smtp_sink) -> None:
    topic = make_topic(db)
    add_people(db, topic, 1)
    # An edition stored without the link (e.g. by an older version): --force cannot help.
    edition = make_edition(
        db,
        [topic],
        html=HTML.replace('<a href="%%UNSUBSCRIBE_URL%%">Peru tilaus</a> ·', ""),
        text=TEXT.replace("Peru tilaus: %%UNSUBSCRIBE_URL%%", ""),
    )
    env = _env(smtp_sink)
    checked = cli("check", str(edition), "--json", "--no-spam", env=env)
    assert checked.exit_code == 1
    assert _codes(checked)["unsubscribe_missing"] == "block"
    for extra in ((), ("--force",)):
        refused = cli("send", str(edition), "--yes", *extra, env=env)
        assert refused.exit_code == 1
        assert "the HTML and text part has no unsubscribe link" in refused.stderr
        assert "--force" not in refused.stderr
    assert smtp_sink.messages == []


def test_send_refuses_an_edition_gmail_would_clip(cli, db, smtp_sink) -> None:
    topic = make_topic(db)
    add_people(db, topic, 1)
    padding = "<p>" + "Pitkä kappale tekstiä. " * 60 + "</p>\n"
    big = HTML.replace("</h1>", "</h1>\n" + padding * 80)
    assert len(big.encode()) > checks.GMAIL_CLIP
    edition = make_edition(db, [topic], html=big)
    env = _env(smtp_sink)
    checked = cli("check", str(edition), "--no-spam", env=env)
    assert checked.exit_code == 1 and "Gmail clips" in checked.stdout and "STOPS" in checked.stdout
    refused = cli("send", str(edition), "--yes", env=env)
    assert refused.exit_code == 1 and "Gmail clips" in refused.stderr
    cli.ok("send", str(edition), "--yes", "--force", env=env)


def test_check_warns_about_alt_texts_plain_http_and_base_url(cli, db, smtp_sink) -> None:
    topic = make_topic(db)
    html = HTML.replace(
        "</h1>",
        '</h1><img src="https://www.lskl.fi/a.png"><img src="https://www.lskl.fi/b.png" alt="">'
        '<a href="http://www.lskl.fi/vanha">vanha</a><a href="http://127.0.0.1:8080/x">x</a>',
    )
    edition = make_edition(db, [topic], html=html)
    env = _env(smtp_sink, NEWSLETTER_BASE_URL="http://uutiskirje.lskl.fi")
    result = cli("check", str(edition), "--json", "--no-spam", env=env)
    findings = {f["code"]: f for f in json.loads(result.stdout)["findings"]}
    assert findings["image_alt"]["level"] == "warn"
    assert findings["image_alt"]["details"] == [
        "https://www.lskl.fi/a.png",
        "https://www.lskl.fi/b.png",
    ]
    assert findings["insecure_links"]["details"] == ["http://www.lskl.fi/vanha"]
    assert findings["base_url_not_https"]["level"] == "block"
    assert result.exit_code == 1
    # The finding order puts what stops a send first.
    levels = [f["level"] for f in json.loads(result.stdout)["findings"]]
    assert levels == sorted(levels, key=["block", "force", "warn", "info"].index)


def test_check_of_an_unknown_edition_is_one_line(cli) -> None:
    result = cli("check", "42")
    assert result.exit_code == 1 and result.stderr.startswith("error: no edition 42")


# --- SpamAssassin ------------------------------------------------------------------------------


def _need_spamassassin() -> None:
    if checks.spamassassin_available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("spamassassin is not installed (scripts/ensure-spamassassin.sh installs it)")
    pytest.skip("spamassassin is not installed")


@pytest.mark.slow
def test_spamassassin_scores_the_default_edition_at_most_zero(cli, db, smtp_sink) -> None:
    _need_spamassassin()
    env = _env(smtp_sink)
    edition = _build(cli, db, env)
    result = cli("check", str(edition), "--json", env=env)
    data = json.loads(result.stdout)
    assert data["spam_score"] is not None and data["spam_score"] <= 0.0, data
    spam = next(f for f in data["findings"] if f["code"] == "spamassassin")
    assert spam["level"] == "info" and spam["details"], spam  # the rules are listed
    assert not any("LOW_CONTRAST" in rule for rule in spam["details"])


@pytest.mark.slow
def test_spamassassin_rules_are_listed_for_a_spammy_message(db, settings) -> None:
    _need_spamassassin()
    topic = make_topic(db)
    shouting = HTML.replace(
        "</h1>",
        '</h1><p style="color:#ffffff">FREE MONEY!!! CLICK HERE NOW!!! 100% FREE VIAGRA</p>',
    )
    edition = make_edition(db, [topic], html=shouting, subject="FREE MONEY!!! $$$ ACT NOW")
    result = checks.spam_score(checks.sample_message(db, settings, edition))
    assert result.score > 0.0
    assert result.rules and all(rule.split()[1].isupper() for rule in result.rules)


# --- --links over HTTP -------------------------------------------------------------------------


class _Pages(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        if self.path == "/no-head" and self.command == "HEAD":
            self.send_response(405)
        elif self.path in ("/ok", "/no-head"):
            self.send_response(200)
        elif self.path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/ok")
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def pages() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_links_option_fetches_every_article_link(cli, db, smtp_sink, pages: str) -> None:
    items = [
        ArticleIn(url=f"{pages}/{path}", title=f"Juttu {path}", published=BASE, topics=[TOPIC])
        for path in ("ok", "moved", "no-head", "gone")
    ]
    add_articles(db, items)
    env = _env(smtp_sink)
    edition = json.loads(
        cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01", "--json", env=env).stdout
    )["edition"]
    without = _codes(cli("check", str(edition), "--json", "--no-spam", env=env))
    assert "broken_links" not in without and "links" not in without  # only with --links
    result = cli("check", str(edition), "--json", "--no-spam", "--links", env=env)
    broken = next(f for f in json.loads(result.stdout)["findings"] if f["code"] == "broken_links")
    assert broken["level"] == "warn"
    assert broken["details"] == [f"{pages}/gone: HTTP 404"]
    assert result.exit_code == 0  # a broken link worries, it does not stop


def test_unreachable_links_are_reported() -> None:
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/"
    found = checks.link_findings(
        [url, url], fetch=functools.partial(checks.fetch_problem, timeout=2)
    )
    assert found[0].code == "broken_links" and len(found[0].details) == 1
    assert "unreachable" in found[0].details[0]


def test_before_send_is_one_call_for_every_sender(db, settings) -> None:
    """The function a digest (or any other sender) calls: same refusals as ``send``."""
    topic = make_topic(db)
    edition = make_edition(db, [topic])
    with pytest.raises(checks.SendRefused) as refused:
        checks.before_send(db, settings, edition)
    assert {f.code for f in refused.value.findings} == {"example_identity", "example_values"}
    with pytest.raises(checks.SendRefused):  # the example sender is never forced through
        checks.before_send(db, settings, edition, force=True)
    identity = {k: OWN_SETTINGS[k] for k in ("org_name", "org_address", "from_addr")}
    checks.before_send(db, settings.with_overrides(**identity), edition, force=True)
    own = settings.with_overrides(**OWN_SETTINGS)
    checks.before_send(db, own, edition)
