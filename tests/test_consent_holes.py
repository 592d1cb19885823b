"""Per-recipient values only where the template puts them (issue 11 item 2).

Every hole marker goes into every place content can reach (article URL, title, summary,
image, alt text, the intro, the subject, the subscriber's name); the edition is imported,
built and sent through the CLI to a real SMTP server, and the received messages are read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import SmtpSink

from newsletter import links
from newsletter.audience import subscribers
from newsletter.mail import placeholders
from newsletter.store.db import token_key

GUESSED = "0" * 32  # someone guessing the sealed form
MARKERS = [
    *placeholders.ALL,
    *(f"%%{name}.{GUESSED}%%" for name in placeholders.NAMES),
    "%%UNSUBSCRIBE_URL.%%",
]
HOSTILE = " ".join(MARKERS)
TOPIC = "yhteisovaikuttavuus"


def smtp_env(sink: SmtpSink) -> dict[str, str]:
    return {
        "NEWSLETTER_SMTP_HOST": sink.host,
        "NEWSLETTER_SMTP_PORT": str(sink.port),
        "NEWSLETTER_SMTP_SECURITY": "none",
    }


def hostile_articles(path: Path) -> Path:
    items = [
        {
            "url": f"https://evil.example/collect?p={marker}&q={marker}",
            "title": f"Otsikko {marker} <b>{marker}</b>",
            "summary": f"Tiivistelmä {HOSTILE}",
            "image": f"https://evil.example/pixel.png?who={marker}",
            "image_alt": f"Kuva {marker}",
            "published": f"2025-08-1{number}T09:00:00+03:00",
            "topics": ["Yhteisövaikuttavuus"],
            "guid": f"vihamielinen-{number}",
        }
        for number, marker in enumerate(MARKERS[:9])
    ]
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return path


def _tokens(settings, db, email: str, topic_id: int) -> tuple[str, str]:
    person = subscribers.find(db, email)
    assert person is not None
    key = token_key(db, settings.secret)
    return (
        links.unsubscribe_token(key, person["id"], topic_id),
        links.preferences_token(key, person["id"]),
    )


def _send(cli, sink: SmtpSink, workdir: Path, *build_args: str) -> int:
    out = cli.ok("build", "--topic", TOPIC, "--since", "2025-08-01", "--json", *build_args)
    edition = json.loads(out.stdout)["edition"]
    cli.ok("send", str(edition), "--force", "--yes", env=smtp_env(sink))
    return edition


def _where(text: str, token: str) -> list[str]:
    """Every line of ``text`` that holds ``token``."""
    return [line.strip() for line in text.splitlines() if token in line]


def _hrefs_with(html: str, token: str) -> list[str]:
    return [h for h in re.findall(r'(?:href|src)="([^"]*)"', html) if token in h]


@pytest.mark.parametrize("name", [f"Maija {HOSTILE}", "%%NAME%%", "%%PREFERENCES_URL%%"])
def test_markers_in_content_subject_intro_and_name_stay_text(
    cli, db, settings, smtp_sink, workdir, name
) -> None:
    cli.ok("articles", "import", str(hostile_articles(workdir / "vihamieliset.json")))
    readers = {"maija@example.fi": name, "matti@example.fi": "Matti"}
    for email, person_name in readers.items():
        cli.ok("subscribers", "add", email, "--name", person_name, "-t", TOPIC, "--confirmed")
    intro = workdir / "intro.txt"
    intro.write_text(f"Hyvä lukija {HOSTILE},\n\ntoinen kappale {HOSTILE}", encoding="utf-8")
    _send(cli, smtp_sink, workdir, "--subject", f"Uutiset {HOSTILE}", "--intro-file", str(intro))
    topic_id = db.execute("SELECT id FROM topics WHERE slug = ?", [TOPIC]).fetchone()[0]
    base = settings.base_url.rstrip("/")
    assert len(smtp_sink.messages) == 2
    for email in readers:
        (received,) = smtp_sink.to(email)
        msg = received.message
        unsub, prefs = _tokens(settings, db, email, topic_id)
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        # The personal links are where the template put them: the footer, the header.
        assert _where(text, unsub) == [f"Peru tilaus: {base}/u/{unsub}"]
        assert _where(text, prefs) == [f"Tilausasetukset: {base}/p/{prefs}"]
        assert _hrefs_with(html, unsub) == [f"{base}/u/{unsub}"]
        assert _hrefs_with(html, prefs) == [f"{base}/p/{prefs}"]
        assert html.count(prefs) == 1 and html.count(unsub) == 1
        assert msg["List-Unsubscribe"].startswith(f"<{base}/u/{unsub}>")
        # Nothing else of anyone's: the other reader's links are nowhere in this message.
        other = next(e for e in readers if e != email)
        for token in _tokens(settings, db, other, topic_id):
            assert token not in received.data.decode("ascii", "replace")
            assert token not in text and token not in html
        # The hostile text arrived as text, in the subject and in both parts.
        assert "%%PREFERENCES_URL%%" in msg["Subject"] and "/p/" not in msg["Subject"]
        assert f"%%NAME.{GUESSED}%%" in text and "%%UNSUBSCRIBE_URL%%" in text
        assert "%%PREFERENCES_URL%%" in html and f"%%NAME.{GUESSED}%%" in html
        assert "https://evil.example/collect?p=%%PREFERENCES_URL%%" in text
        for href in re.findall(r'(?:href|src)="(https://evil\.example[^"]*)"', html):
            assert "/p/" not in href and "/u/" not in href and prefs not in href
        assert prefs not in msg["To"] and "/p/" not in msg["To"]
        # Images and their alt texts went in too, and stayed text.
        assert "https://evil.example/pixel.png?who=%%PREFERENCES_URL%%" in html
        assert 'alt="Kuva %%PREFERENCES_URL%%"' in html


CUSTOM_HTML = """\
<mjml lang="{{ lang }}">
  <mj-body width="600px">
    <mj-section><mj-column>
      <mj-text>Hei {{ name }}! {{ intro_paragraphs | join(" ") }}</mj-text>
      {% for article in articles %}
      <mj-text><a href="{{ article.url }}">{{ article.title }}</a></mj-text>
      {% endfor %}
      <mj-text><a href="{{ preferences_url }}">Asetukset</a></mj-text>
      <mj-text><a href="{{ unsubscribe_url }}">Peru</a></mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>
"""
CUSTOM_TEXT = """\
Hei {{ name }}!
{% for article in articles %}{{ article.title }}: {{ article.url }}
{% endfor %}
Asetukset: {{ preferences_url }}
Peru: {{ unsubscribe_url }}
"""


def test_a_template_that_greets_by_name_gets_the_name_as_text(
    cli, db, settings, smtp_sink, workdir
) -> None:
    """The template's own name hole is filled, once, with the name as written."""
    cli.ok("articles", "import", str(hostile_articles(workdir / "vihamieliset.json")))
    name = "Maija %%PREFERENCES_URL%% %%UNSUBSCRIBE_URL%%"
    cli.ok("subscribers", "add", "maija@example.fi", "--name", name, "-t", TOPIC, "--confirmed")
    (workdir / "tervehdys.mjml.j2").write_text(CUSTOM_HTML, encoding="utf-8")
    (workdir / "tervehdys.txt.j2").write_text(CUSTOM_TEXT, encoding="utf-8")
    _send(cli, smtp_sink, workdir, "--template", str(workdir / "tervehdys.mjml.j2"))
    topic_id = db.execute("SELECT id FROM topics WHERE slug = ?", [TOPIC]).fetchone()[0]
    unsub, prefs = _tokens(settings, db, "maija@example.fi", topic_id)
    msg = smtp_sink.to("maija@example.fi")[0].message
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.startswith(f"Hei {name}!")
    assert "Hei Maija %%PREFERENCES_URL%% %%UNSUBSCRIBE_URL%%!" in html
    assert text.count(prefs) == 1 and text.count(unsub) == 1
    assert html.count(prefs) == 1 and html.count(unsub) == 1


def test_a_draft_built_before_holes_were_sealed_is_built_again_not_sent(cli, db, smtp_sink) -> None:
    topic_id = db.execute("INSERT INTO topics (slug, name, created) VALUES (?, ?, ?)", [
        TOPIC, "Yhteisövaikuttavuus", "2025-01-01T00:00:00Z"
    ]).lastrowid  # fmt: skip
    subscribers.add(db, "maija@example.fi", topic_ids=[topic_id], status="confirmed")
    legacy = '<a href="https://evil.example/?p=%%PREFERENCES_URL%%">x</a> %%UNSUBSCRIBE_URL%%'
    edition = db.execute(
        "INSERT INTO editions (subject, lang, template, html, text, status, created, updated)"
        " VALUES ('Vanha', 'fi', 'default', ?, ?, 'draft', '2025-01-01T00:00:00Z',"
        " '2025-01-01T00:00:00Z')",
        [legacy, legacy],
    ).lastrowid
    db.execute("INSERT INTO edition_topics VALUES (?, ?)", [edition, topic_id])
    result = cli("send", str(edition), "--force", "--yes", env=smtp_env(smtp_sink))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: edition {edition} was built by an earlier version")
    assert "build it again" in result.stderr and "Traceback" not in result.stderr
    assert smtp_sink.messages == []
