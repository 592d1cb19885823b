"""Every header line of every message stays within SMTP's 998 octets, whatever the input."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.header import Header, decode_header, make_header
from email.utils import formataddr, parseaddr

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from newsletter.config import Settings
from newsletter.mail import message

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
LOCAL = st.text(
    alphabet=ATEXT,
    min_size=1,
    max_size=300,
)
DOMAIN_LABEL = st.text(
    alphabet=st.characters(categories=("Ll", "Lu", "Nd")), min_size=1, max_size=30
)
ANY_TEXT = st.text(max_size=2000)  # every plane, controls and line breaks included


def _header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def _shown(data: bytes, header: str) -> tuple[str, str]:
    """(display name, address) as RFC 2047 reads them: the space between two adjacent encoded
    words is not part of the name (Python's newer parser keeps it, mail clients do not)."""
    raw = message_from_bytes(data, policy=policy.compat32)[header]
    name, address = parseaddr(" ".join(raw.split()))
    return str(make_header(decode_header(name))), address


def _render(settings: Settings, subject: str, name: str, address: str, org: str) -> bytes:
    edition = message.EditionMessage(
        settings.with_overrides(org_name=org),
        subject=subject,
        html="<p>Hei %%NAME%%</p><a href='%%UNSUBSCRIBE_URL%%'>x</a>",
        text="Hei %%NAME%%\n%%UNSUBSCRIBE_URL%%\n",
        list_id=message.list_id(settings, ["yhteisovaikuttavuus"]),
    )
    data, _ = edition.render(
        to_email=address,
        to_name=name,
        unsubscribe_url="https://uutiskirje.example.fi/u/" + "a" * 40,
        preferences_url="https://uutiskirje.example.fi/p/abc",
        unsubscribe_mailto="mailto:unsubscribe@example.fi?subject=unsubscribe%20abc",
    )
    return data


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=ANY_TEXT,
    name=ANY_TEXT,
    org=st.text(max_size=500).filter(lambda v: "\r" not in v and "\n" not in v),
    local=LOCAL,
    labels=st.lists(DOMAIN_LABEL, min_size=1, max_size=8),
)
def test_no_header_line_passes_998_octets(
    subject: str, name: str, org: str, local: str, labels: list[str]
) -> None:
    address = f"{local}@{'.'.join(labels)}.fi"
    settings = Settings(from_addr="Säätiö <uutiskirje@example.fi>")
    try:
        data = _render(settings, subject, name, address, org)
    except message.AddressError:
        # Refused up front (a local part or domain no server would take): never half-sent.
        with pytest.raises(message.AddressError):
            message.ascii_address(address)
        return
    lines = _header_lines(data)
    assert all(len(line) <= message.MAX_LINE for line in lines), max(lines, key=len)[:80]
    parsed = message_from_bytes(data, policy=policy.default)
    # The name survives the folding: what a mail client shows is what was written.
    shown, to = _shown(data, "To")
    assert shown == message.one_line(name)[: message.MAX_NAME]
    assert to == message.ascii_address(address)
    assert parsed["Subject"] == message.one_line(subject)


def test_the_issue_s_name_of_four_byte_characters_fits(settings: Settings) -> None:
    name = "😀" * 200  # 800 octets of UTF-8: one encoded word would be ~1,080 octets
    data = _render(settings, "Uutiskirje", name, "maija@example.fi", "Säätiö")
    lines = _header_lines(data)
    start = next(i for i, line in enumerate(lines) if line.startswith(b"To:"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(b" "))
    assert end - start > 10  # the name was folded into many short lines, not cut short
    assert max(len(line) for line in lines[start:end]) <= 78
    assert _shown(data, "To") == (name, "maija@example.fi")


def test_an_address_longer_than_smtp_allows_is_refused() -> None:
    with pytest.raises(message.AddressError, match="longer than 254"):
        message.format_address("Maija", "m" * 250 + "@example.fi")


# --- display names as RFC 2047 encoded words (issue 17) ------------------------------------

TRICKY = list(
    "aÄö😀👩\u200d👧\U0001f1eb\U0001f1ee\u0301\u0308\u0345"  # emoji, ZWJ, flags, combining marks
    "اسمעברית\u200f\u202e\u2067"  # right-to-left scripts and direction marks
    "中文\"'\\=?_ .-!*+/()<>@,;:\t\x01\x7f"  # quotes, specials, what q-encoding escapes
)
# Mostly ASCII with a few others: q-encoded (it is shorter), long enough for many words.
_PLAIN_RUN = st.text(alphabet="abcdefghijklmnop QRS-", min_size=1, max_size=12)
MOSTLY_ASCII = st.lists(
    st.one_of(_PLAIN_RUN, _PLAIN_RUN, _PLAIN_RUN, st.sampled_from(list("äÖ€😀\u0301=?_."))),
    min_size=4,
    max_size=60,
).map("".join)
NAMES = st.one_of(
    st.text(max_size=400),  # every plane
    MOSTLY_ASCII,
    st.text(alphabet=st.sampled_from(TRICKY), max_size=400),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=300),
    st.builds(
        lambda before, inner, after: f"{before}=?utf-8?q?{inner}?={after}",
        st.text(max_size=30),
        st.text(alphabet=st.sampled_from(TRICKY), max_size=30),
        st.text(max_size=30),
    ),
)


def _words(shown: str) -> list[str]:
    return shown.split("\r\n ")


@hsettings(max_examples=600, deadline=None)
@given(name=NAMES)
def test_display_names_read_back_as_written_in_short_lines(name: str) -> None:
    expected = message.one_line(name)[: message.MAX_NAME]
    shown = message.phrase(name)
    data = f"To: {message.format_address(name, 'maija@example.fi')}\r\n\r\n".encode()
    assert all(len(line) <= message.MAX_LINE for line in _header_lines(data))
    # What RFC 2047 readers show (the folds between adjacent words are not text).
    assert _shown(data, "To") == (expected, "maija@example.fi")
    address = message_from_bytes(data, policy=policy.default)["To"].addresses[0]
    assert address.addr_spec == "maija@example.fi"
    if not expected.isascii() or "=?" in expected:
        words = _words(shown)
        assert all(len(word) <= 75 for word in words)
        assert len(f"Reply-To: {words[0]}") <= 76  # the longest header a name follows
        decoded = []
        for word in words:
            ((raw, charset),) = decode_header(word)
            assert charset == "utf-8"
            decoded.append(raw.decode("utf-8"))  # strict: no word splits a character
        assert "".join(decoded) == expected
        # The modern parser reads the words as RFC 2047 says in unstructured text...
        subject = message_from_bytes(f"Subject: {shown}\r\n\r\n".encode(), policy=policy.default)
        assert str(subject["Subject"]) == expected
        # ...and in an address it keeps each fold as a space (CPython gh-128110); one word
        # reads back exactly there too.
        assert address.display_name == " ".join(decoded)
        if not expected.isascii():  # what email.header writes, byte for byte
            header = Header(expected, "utf-8", header_name="Reply-To")
            assert shown == header.encode(linesep="\r\n", maxlinelen=76)
    else:
        assert address.display_name == expected
        assert shown == (formataddr((expected, "x@x"))[: -len(" <x@x>")] if expected else "")


@hsettings(max_examples=500)
@given(st.text(alphabet=st.characters(max_codepoint=127), min_size=1, max_size=250))
def test_ascii_names_are_quoted_as_formataddr_quotes_them(name: str) -> None:
    assert message.quoted(name) == formataddr((name, "x@x"))[: -len(" <x@x>")]


@pytest.mark.parametrize(
    "name", ["=?utf-8?q?Tietohallinto?=", "Maija =?utf-8?b?QWRtaW4=?=", "a=?b?=c"]
)
def test_an_ascii_name_that_looks_encoded_is_shown_as_written(name: str) -> None:
    """Written bare, a reader would decode it and show "Tietohallinto" or "Admin"."""
    data = f"To: {message.format_address(name, 'maija@example.fi')}\r\n\r\n".encode()
    assert _shown(data, "To") == (name, "maija@example.fi")
    assert message_from_bytes(data, policy=policy.default)["To"].addresses[0].display_name == name
    assert message.phrase(name).startswith("=?utf-8?")  # the whole name, as encoded words


def test_a_short_non_ascii_name_is_one_word_as_before() -> None:
    assert message.phrase("Maija Meikäläinen") == "=?utf-8?q?Maija_Meik=C3=A4l=C3=A4inen?="
    assert message.phrase("Esimerkkisäätiö") == "=?utf-8?b?RXNpbWVya2tpc8Okw6R0acO2?="


@hsettings(max_examples=500)
@given(
    st.text(max_size=40)
    | st.text(alphabet=st.sampled_from(list(" \t\r\n\0\x85\u2028\xa0ab")), max_size=20)
)
def test_one_line_is_the_words_of_the_value_joined_by_spaces(value: str) -> None:
    """Its shortcut for values already on one line changes nothing."""
    assert message.one_line(value) == " ".join(value.replace("\0", " ").split())
