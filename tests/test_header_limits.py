"""Every header line of every message stays within SMTP's 998 octets, whatever the input."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.utils import parseaddr

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
