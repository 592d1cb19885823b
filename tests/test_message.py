"""Hand-assembled MIME messages: they parse back, carry every header once, and resist injection."""

from __future__ import annotations

import os
import re
import subprocess
from email import message_from_bytes, policy
from html import escape as html_escape
from pathlib import Path
from unittest import mock

import pytest
from conftest import need_tool
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from newsletter.config import Settings
from newsletter.mail import dots, message, placeholders, smtp

HTML = (
    "<!DOCTYPE html><html lang='fi'><body><p>Hei %%NAME%%!</p>"
    + "<p>"
    + "Pitkä rivi ilman rivinvaihtoja. " * 3000
    + "</p>"
    + "<a href='%%UNSUBSCRIBE_URL%%'>Peru tilaus</a>"
    + " <a href='%%PREFERENCES_URL%%'>Asetukset</a>\n.\n</body></html>"
)
TEXT = "Hei %%NAME%%!\n\nPeru tilaus: %%UNSUBSCRIBE_URL%%\nAsetukset: %%PREFERENCES_URL%%\n"
UNSUB = "https://uutiskirje.example.fi/u/" + "a" * 40 + "?x=1&y=2"


def _edition(settings: Settings, **kwargs) -> message.EditionMessage:
    return message.EditionMessage(
        settings,
        subject=kwargs.pop("subject", "Yhteisövaikuttavuus – marraskuu 2025 🌱"),
        html=HTML,
        text=TEXT,
        list_id=message.list_id(settings, ["yhteisovaikuttavuus"]),
        **kwargs,
    )


def _render(edition: message.EditionMessage, **kwargs) -> tuple[bytes, str]:
    values = {
        "to_email": "Maija.Meikalainen@example.fi",
        "to_name": "Maija Meikäläinen",
        "unsubscribe_url": UNSUB,
        "preferences_url": "https://uutiskirje.example.fi/p/abc",
        "unsubscribe_mailto": "mailto:unsubscribe@example.fi?subject=unsubscribe%20abc",
    }
    values.update(kwargs)
    return edition.render(**values)


def test_message_parses_with_both_parts_and_filled_placeholders(settings: Settings) -> None:
    data, message_id = _render(_edition(settings))
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = [part for part in parsed.iter_parts()]
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert "Hei Maija Meikäläinen!" in text.get_content()
    assert f"Peru tilaus: {UNSUB}" in text.get_content()
    # In HTML the URL is escaped (& -> &amp;) but the link is the same URL.
    escaped = "href='https://uutiskirje.example.fi/u/" + "a" * 40 + "?x=1&amp;y=2'"
    assert escaped in html.get_content()
    assert "\n.\r\n" in html.get_content()  # a lone dot line survives (SMTP dot-stuffing)
    for part in (text, html):
        assert placeholders.remaining(part.get_content()) == []
    assert parsed["Message-ID"] == message_id
    assert message_id.endswith("@example.fi>")
    assert str(parsed["Subject"]) == "Yhteisövaikuttavuus – marraskuu 2025 🌱"
    assert str(parsed["To"]) == "Maija Meikäläinen <Maija.Meikalainen@example.fi>"
    assert parsed["From"].addresses[0].addr_spec == "uutiskirje@example.fi"
    assert parsed["Reply-To"].addresses[0].addr_spec == "info@example.fi"
    assert parsed["List-Id"] == "Esimerkkisäätiö <yhteisovaikuttavuus.example.fi>"
    assert parsed["Date"].datetime is not None


def test_list_unsubscribe_headers_are_one_unfolded_line(settings: Settings) -> None:
    data, _ = _render(_edition(settings))
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    lines = head.split("\r\n")
    unsub = [line for line in lines if line.startswith("List-Unsubscribe:")]
    assert unsub == [
        f"List-Unsubscribe: <{UNSUB}>, <mailto:unsubscribe@example.fi?subject=unsubscribe%20abc>"
    ]
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    names = [line.split(":", 1)[0] for line in lines if line and line[0] not in " \t"]
    assert len(names) == len(set(names)), "every header exactly once"


def test_no_line_exceeds_smtp_limit(settings: Settings) -> None:
    data, _ = _render(_edition(settings))
    head, body = data.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert max(len(line) for line in body.split(b"\r\n")) <= 78  # quoted-printable soft breaks
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only, no bare LF


@pytest.mark.parametrize(
    "name",
    ["Evil\r\nBcc: victim@example.com", "Evil\nX-Injected: yes", "Eve\rSubject: spoof"],
)
def test_line_breaks_in_a_name_never_make_a_header(settings: Settings, name: str) -> None:
    data, _ = _render(_edition(settings), to_name=name)
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert len(parsed.get_all("Subject")) == 1
    assert len(parsed["To"].addresses) == 1
    assert parsed["To"].addresses[0].addr_spec == "Maija.Meikalainen@example.fi"


@pytest.mark.parametrize(
    "address",
    ["a@example.fi\r\nBcc: b@example.com", "a@example.fi, b@example.com", "<a@example.fi>", "a"],
)
def test_unsafe_addresses_are_refused(settings: Settings, address: str) -> None:
    with pytest.raises(message.AddressError):
        _render(_edition(settings), to_email=address)


def test_list_message_without_unsubscribe_url_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unsubscribe"):
        _render(_edition(settings), unsubscribe_url="")


def test_single_message_has_no_list_headers(settings: Settings) -> None:
    data, _ = message.build_single(
        settings,
        to_email="a@example.fi",
        to_name="",
        subject="Vahvista tilaus",
        html="<p>Vahvista</p>",
        text="Vahvista",
    )
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed["List-Unsubscribe"] is None and parsed["List-Id"] is None
    assert str(parsed["To"]) == "a@example.fi"
    assert parsed.get_body(("plain",)).get_content().strip() == "Vahvista"


def test_message_ids_are_unique(settings: Settings) -> None:
    edition = _edition(settings)
    ids = {_render(edition)[1] for _ in range(2500)}  # past one pool of random bits
    assert len(ids) == 2500


def test_a_forked_child_draws_message_ids_of_its_own() -> None:
    # The random bits are read ahead in bulk: a child must not reuse its parent's.
    message.make_message_id("example.fi")  # the parent has a pool
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only reports
        os.write(writer, message.make_message_id("example.fi").encode())
        os._exit(0)
    os.close(writer)
    theirs = os.read(reader, 200).decode().split(".", 1)[1]
    os.waitpid(child, 0)
    ours = message.make_message_id("example.fi").split(".", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{16}@example\.fi>", theirs)
    assert theirs != ours


def test_dkim_signature_verifies_and_covers_list_unsubscribe(
    settings: Settings, tmp_path: Path
) -> None:
    need_tool("openssl", "it makes the DKIM key")
    import dkim

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    signed = settings.with_overrides(
        dkim_selector="news", dkim_domain="example.fi", dkim_key_file=key
    )
    data, _ = _render(_edition(signed))
    assert data.startswith(b"DKIM-Signature:")
    signature = data.split(b"\r\n\r\n", 1)[0].split(b"DKIM-Signature:", 1)[1]
    signed_headers = signature.split(b"h=", 1)[1].split(b";", 1)[0].replace(b"\r\n", b"")
    covered = {h.strip().lower() for h in signed_headers.split(b":")}
    assert {b"list-unsubscribe", b"list-unsubscribe-post", b"from", b"subject"} <= covered

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"news._domainkey.example.fi." else b""

    assert dkim.verify(data, dnsfunc=dns)
    tampered = data.replace(b"List-Unsubscribe: <https://", b"List-Unsubscribe: <http://")
    assert not dkim.verify(tampered, dnsfunc=dns)


@pytest.mark.parametrize(
    ("org", "header"),
    [
        ("Apu, Tuki & Neuvo ry", '"Apu, Tuki & Neuvo ry" <yhteisovaikuttavuus.example.fi>'),
        (
            "Esimerkkisäätiö",
            "=?utf-8?b?RXNpbWVya2tpc8Okw6R0acO2?= <yhteisovaikuttavuus.example.fi>",
        ),
    ],
)
def test_list_id_phrase_is_quoted_or_encoded(settings: Settings, org: str, header: str) -> None:
    data, _ = _render(_edition(settings.with_overrides(org_name=org)))
    lines = data.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")
    assert f"List-Id: {header}" in lines
    decoded = str(message_from_bytes(data, policy=policy.default)["List-Id"])
    assert decoded.replace('"', "") == f"{org} <yhteisovaikuttavuus.example.fi>"


def test_a_very_long_ascii_subject_is_folded_within_smtp_limits(settings: Settings) -> None:
    subject = "Uutiset " + "x" * 1200  # one unbreakable word: plain folding cannot help
    data, _ = _render(_edition(settings, subject=subject))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert str(message_from_bytes(data, policy=policy.default)["Subject"]) == subject


def test_a_very_long_name_cannot_push_the_to_line_past_smtp_limits(settings: Settings) -> None:
    data, _ = _render(_edition(settings), to_name="Äänekoski " * 300)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    to = message_from_bytes(data, policy=policy.default)["To"]
    assert to.addresses[0].addr_spec == "Maija.Meikalainen@example.fi"
    assert to.addresses[0].display_name.startswith("Äänekoski Äänekoski")


@pytest.mark.parametrize(
    "body",
    [
        "%%NAME%% alussa, lopussa %%NAME%%",
        "Rivi päättyy välilyöntiin ennen paikkaa: %%NAME%%\nSeuraava rivi\t%%NAME%%\t\n",
        "x" * 75 + "%%UNSUBSCRIBE_URL%%" + "y" * 200 + "\n.\n%%PREFERENCES_URL%%\n",
        "%%NAME%%%%NAME%%\r\n\r\n=3D ei ole koodattu %%UNSUBSCRIBE_URL%%=",
        "ääkköset " * 40 + "%%NAME%%" + " ☀️" * 30,
    ],
)
def test_body_encoded_in_pieces_decodes_to_the_filled_body(settings: Settings, body: str) -> None:
    """The body is encoded once with holes for the values: it must decode exactly as if the
    filled body had been encoded whole, and keep every line short."""
    edition = message.EditionMessage(
        settings, subject="s", html=body, text=body, list_id=message.list_id(settings, ["t"])
    )
    values = {
        "to_name": "Åsa Öhman",
        "unsubscribe_url": UNSUB,
        "preferences_url": "https://uutiskirje.example.fi/p/x y",
    }
    data, _ = edition.render(to_email="asa@example.fi", **values)
    parsed = message_from_bytes(data, policy=policy.default)
    text, html = parsed.iter_parts()
    filled = {
        placeholders.NAME: values["to_name"],
        placeholders.UNSUBSCRIBE_URL: values["unsubscribe_url"],
        placeholders.PREFERENCES_URL: values["preferences_url"],
    }
    expected = message._normalise(placeholders.fill(body, filled))
    assert text.get_content() == expected
    escaped = {key: html_escape(value, quote=True) for key, value in filled.items()}
    assert html.get_content() == message._normalise(placeholders.fill(body, escaped))
    body_bytes = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body_bytes.split(b"\r\n")) <= 78
    assert b"\n" not in body_bytes.replace(b"\r\n", b"")


# --- render_stuffed: the message as DATA carries it (issue 17) -----------------------------

SEALED = placeholders.Holes.new()
# Bodies with dots where lines (and quoted-printable's soft-wrapped lines) start; values with
# dots, line breaks and what HTML escapes.
BODY_TEXT = st.lists(st.sampled_from([*"ab. .\n.\r\n=ä😀%\t", "x" * 70]), max_size=40).map("".join)
URLISH = st.lists(st.sampled_from([*"ab.:/?&=%\"'<> \r\n\t", "x" * 80]), max_size=12).map("".join)


def _body(parts: list[str], holes: placeholders.Holes) -> str:
    names = {"<n>": holes.name, "<u>": holes.unsubscribe_url, "<p>": holes.preferences_url}
    return "".join(names.get(part, part) for part in parts)


BODIES = st.lists(st.one_of(BODY_TEXT, st.sampled_from(["<n>", "<u>", "<p>"])), max_size=12)
FIXED = {
    "make_message_id": lambda domain: f"<fixed@{domain}>",
    "_date": lambda: "Thu, 01 Jan 2026 00:00:00 GMT",
}


def _both(edition: message.EditionMessage, **values) -> tuple[bytes, bytes]:
    """(render_stuffed, smtp.dot_stuffed(render) + ".\\r\\n") with Message-ID and Date fixed."""
    with (
        mock.patch.object(message, "make_message_id", FIXED["make_message_id"]),
        mock.patch.object(message, "_date", FIXED["_date"]),
    ):
        stuffed, stuffed_id = edition.render_stuffed(**values)
        data, data_id = edition.render(**values)
    assert stuffed_id == data_id
    return stuffed, smtp.dot_stuffed(data) + b".\r\n"


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    html_parts=BODIES,
    text_parts=BODIES,
    holes=st.sampled_from([SEALED, placeholders.LEGACY, placeholders.NO_HOLES]),
    is_list=st.booleans(),
    # RFC 5322 lets a field name start with a dot: the head is checked per message too.
    extra=st.sampled_from([None, {".Dotted": "v"}]),
    name=st.one_of(st.text(max_size=40), URLISH),
    unsubscribe=URLISH,
    preferences=URLISH,
    mailto=URLISH,
)
def test_render_stuffed_is_render_dot_stuffed(
    html_parts, text_parts, holes, is_list, extra, name, unsubscribe, preferences, mailto
) -> None:
    settings = Settings(from_addr="Säätiö <uutiskirje@example.fi>", reply_to="info@example.fi")
    edition = message.EditionMessage(
        settings,
        subject=".Aihe",
        html=_body(html_parts, holes),
        text=_body(text_parts, holes),
        list_id=message.list_id(settings, ["t"]) if is_list else None,
        extra_headers=extra,
        holes=holes,
    )
    stuffed, expected = _both(
        edition,
        to_email="maija@example.fi",
        to_name=name,
        unsubscribe_url="https://x.fi/u/" + unsubscribe,
        preferences_url=preferences,
        unsubscribe_mailto=mailto,
    )
    assert stuffed == expected
    assert stuffed.endswith(b"\r\n.\r\n") and b"\n.\r\n" not in stuffed[:-3]


@hsettings(max_examples=300)
@given(
    st.binary(max_size=300) | st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"a"])).map(b"".join)
)
def test_the_stuffing_rule_is_the_senders(data: bytes) -> None:
    assert dots.dot_stuffed(data) == smtp.dot_stuffed(data)


def test_render_stuffed_searches_only_this_recipients_pieces(settings: Settings) -> None:
    """The edition's own pieces were stuffed when it was built: per message only the
    headers and the filled-in values are looked at, not the ~50 KB body."""
    edition = _edition(settings)
    seen: list[int] = []
    real = dots.stuffed_lines

    def counting(chunk: bytes) -> bytes:
        seen.append(len(chunk))
        return real(chunk)

    with mock.patch.object(dots, "stuffed_lines", counting):
        stuffed, _ = edition.render_stuffed(
            to_email="Maija.Meikalainen@example.fi",
            to_name=".Maija",
            unsubscribe_url=UNSUB,
            preferences_url="https://uutiskirje.example.fi/p/abc",
        )
    # The name begins a quoted-printable line (every value does): its dot was doubled.
    assert len(stuffed) > 50_000 and b"\r\n..Maija=\r\n" in stuffed
    assert seen and max(seen) < 2_000


def test_a_signed_message_is_signed_then_stuffed_whole(settings: Settings, tmp_path: Path) -> None:
    need_tool("openssl", "it makes the DKIM key")
    import dkim

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    signed = settings.with_overrides(
        dkim_selector="news", dkim_domain="example.fi", dkim_key_file=key
    )
    edition = _edition(signed)
    values = {"to_email": "a@example.fi", "to_name": ".Åsa", "unsubscribe_url": UNSUB}
    with mock.patch.object(dkim, "time", mock.Mock(time=lambda: 1_767_225_600)):
        stuffed, expected = _both(edition, **values)
    assert stuffed.startswith(b"DKIM-Signature:") and stuffed == expected
