"""MIME messages, assembled by hand for speed and exact control of every header.

An edition is encoded once into an ``EditionMessage``; per recipient only the headers and
the filled placeholders change. ``email.message.EmailMessage`` costs ~10 ms a message and
folds a long List-Unsubscribe URL into encoded words (which breaks one-click unsubscribe),
so headers are written here and bodies go through the C quoted-printable encoder.
"""

from __future__ import annotations

import binascii
import hashlib
import html
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from email.header import Header
from email.utils import formatdate, parseaddr
from functools import lru_cache

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mail import dots, placeholders, words

CRLF = "\r\n"
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_UNSAFE_IN_HEADER = re.compile(r"[\r\n\0]")
_NOT_IN_ADDRESS = re.compile(r'[\s<>,;"\x00-\x1f\x7f]')
MAX_NAME = 200  # characters of a display name
MAX_PLAIN_HEADER = 900  # characters; leaves room for the name within SMTP's 998
MAX_LINE = 998  # octets of a header line without CR LF (RFC 5322 section 2.1.1)
MAX_ADDRESS = 254  # octets of an address (RFC 5321's path limit less the brackets)
_ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058
_WORD_LINE = words.LINE  # where encoded words are folded (RFC 2047 section 2)
# What DKIM must cover: From plus everything a forwarder could alter to change the meaning,
# including the one-click unsubscribe pair (RFC 8058 section 4).
DKIM_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Reply-To",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"MIME-Version",
    b"Content-Type",
)


class AddressError(NewsletterError):
    """An address or display name that cannot go into a header safely."""


def one_line(value: str) -> str:
    """A header value on one line: CR, LF and NUL become spaces, runs collapse."""
    # Printable text has no white space but " " (the rest is a control or a separator):
    # most values, every URL we make, are on one line as they are.
    if value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        return value
    return " ".join(_UNSAFE_IN_HEADER.sub(" ", value).split())


def encode_header_text(value: str) -> str:
    """Unstructured header text (Subject), RFC 2047-encoded when it is not ASCII, or too
    long for one line: SMTP refuses lines over 998 octets, and encoded words fold anywhere."""
    value = one_line(value)
    if value.isascii() and len(value) <= MAX_PLAIN_HEADER:
        return value
    return Header(value, "utf-8", header_name="Subject").encode(linesep=CRLF)


def ascii_address(address: str) -> str:
    """One plain address as a header or RCPT TO may carry it: ASCII local part, IDNA domain.

    Anything else is refused: smtplib would quietly pick an address out of
    ``a@x.fi>,<b@y.fi`` or an address followed by CR LF, and a header would gain a line.
    """
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or _NOT_IN_ADDRESS.search(address):
        raise AddressError(f"not a single plain address: {address!r}")
    if not local.isascii():
        raise AddressError(f"non-ASCII local part needs SMTPUTF8, not supported: {address!r}")
    try:
        domain = _idna(domain)
    except UnicodeError:
        raise AddressError(f"invalid domain in {address!r}") from None
    # An address cannot be folded: past SMTP's own limit no server would take it anyway.
    if len(local) + 1 + len(domain) > MAX_ADDRESS:
        raise AddressError(f"address longer than {MAX_ADDRESS} characters: {address[:60]!r}...")
    return f"{local}@{domain}"


# email.utils.formataddr's quoting of an ASCII display name, without its per-call checks.
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
_ESCAPES = re.compile(r'[\\"]')


def quoted(name: str) -> str:
    """An ASCII display name as ``formataddr`` writes it: bare, or quoted when it has specials."""
    if _SPECIALS.search(name) is None:
        return name
    return '"' + _ESCAPES.sub(r"\\\g<0>", name) + '"'


@lru_cache(maxsize=4096)
def _idna(domain: str) -> str:
    # A list's recipients share few domains, and the codec costs microseconds a message.
    return domain.encode("idna").decode("ascii")


def phrase(name: str) -> str:
    """A display name for an address header, foldable wherever it may get long.

    ASCII names are quoted as ``formataddr`` quotes them; any other name becomes RFC 2047
    encoded words of at most 75 characters, one per folded line, so no name of any script or
    length can push a header line past 998 octets. So does an ASCII name with "=?" in it: a
    reader would decode one that looks like an encoded word and show something else.
    """
    return _phrase(one_line(name))


def _phrase(line: str) -> str:
    line = line[:MAX_NAME]
    if not line:
        return ""
    if line.isascii() and "=?" not in line:
        return quoted(line)
    return words.encoded(line)


def format_address(name: str, address: str) -> str:
    """``Name <address>`` with the name encoded and folded as needed; one address only."""
    return _address(_phrase(one_line(name)), address)


def _address(shown: str, address: str) -> str:
    plain = ascii_address(address)
    if not shown:
        return plain
    last = shown.rpartition(CRLF)[2]
    # Fold before the address rather than let a long name and address share one line.
    gap = " " if len(last) + len(plain) + 3 <= _WORD_LINE else CRLF + " "
    return f"{shown}{gap}<{plain}>"


class _RandomPool:
    """Random bits for Message-IDs, read from the system 8 KB at a time: one system call
    per message was 3% of a send. They stay unguessable, since a bounce report that names
    only a Message-ID can mark its recipient as bounced."""

    def __init__(self) -> None:
        self._forget()
        os.register_at_fork(after_in_child=self._forget)  # a child draws its own

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._at = b"", 0

    def hex8(self) -> str:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool, self._at = secrets.token_bytes(8192), 0
            self._at += 8
            return self._pool[self._at - 8 : self._at].hex()


_random = _RandomPool()


def make_message_id(domain: str) -> str:
    # Time plus 64 random bits: unique without a host-name lookup per message.
    return f"<{time.time_ns():x}.{_random.hex8()}@{domain}>"


_last_date = (-1, "")


def _date() -> str:
    """The Date header's value now, formatted once a second (its finest unit)."""
    global _last_date
    second = int(time.time())
    last = _last_date  # one tuple, so threads that race here see a matching pair
    if last[0] != second:
        last = _last_date = (second, formatdate(second, usegmt=True))
    return last[1]


def list_id(
    settings: Settings, topic_slugs: Sequence[str], topic_names: Sequence[str] = ()
) -> tuple[str, str]:
    """(List-Id value's identifier, its phrase) for an edition's topics (RFC 2919).

    The identifier is the same in every language (filters match it); the phrase names the
    topics in the reader's language when ``topic_names`` are given.
    """
    slug = "+".join(topic_slugs) or "newsletter"
    if len(slug) > 100:  # many topics: an identifier cannot fold, so keep it short
        slug = "t" + hashlib.sha256(slug.encode()).hexdigest()[:16]
    phrase = settings.org_name
    if topic_names:
        phrase = f"{phrase}: {', '.join(topic_names)}" if phrase else ", ".join(topic_names)
    if len(phrase) > 200:  # a phrase for people to read, not a list of everything
        phrase = phrase[:199].rstrip() + "…"
    return f"{slug}.{settings.sender_domain}", phrase


def _normalise(text: str) -> str:
    body = _LINE_BREAKS.sub(CRLF, text)
    return body if body.endswith(CRLF) else body + CRLF


# Text quoted-printable keeps as it is, on one short line: printable ASCII but "=", no space
# at the end, no dot at the start (a line of a lone dot is encoded, and none needs stuffing).
_PLAIN_VALUE = re.compile(r"[!-\-/-<>-~](?:[ !-<>-~]{0,68}[!-<>-~])?")
_HTML_SPECIAL = re.compile(r"[&<>\"']")  # what html.escape(quote=True) changes


def _qp(text: str) -> bytes:
    """Quoted-printable for one CRLF-normalised piece of a body; joinable with the next.

    With CRLF input ``b2a_qp`` keeps CRLF line ends and soft-wraps at 76 octets, so no line
    nears SMTP's 998-octet limit (MJML writes one ~66 KB line). A piece without a line end
    gets bare-LF soft breaks, fixed here; a piece that stops mid-line ends in a soft break
    ("=" CRLF), which decoders drop, so pieces concatenate into valid quoted-printable.
    """
    raw = text.encode("utf-8")
    encoded = binascii.b2a_qp(raw, istext=True)
    if b"\n" not in raw:
        encoded = encoded.replace(b"\n", b"\r\n")
    if encoded and not encoded.endswith(b"\r\n"):
        encoded += b"=\r\n"
    return encoded


class _EncodedBody:
    """A body encoded once, with holes where the per-recipient placeholders go.

    Encoding the whole 40-90 KB body for every recipient was most of a message's cost;
    now only the short filled-in values are encoded per message. ``_qp`` ends every piece
    in CRLF, so every piece and every value begins a line: each is dot-stuffed on its own,
    the fixed pieces once here, and they join into the stuffed whole.
    """

    def __init__(self, body: str, holes: placeholders.Holes) -> None:
        self._pieces: list[bytes | str] = []
        position = 0
        for match in holes.pattern.finditer(body):
            self._pieces += [_qp(body[position : match.start()]), match.group(1)]
            position = match.end()
        self._pieces.append(_qp(body[position:]))
        assert all(not p or p.endswith(b"\n") for p in self._pieces if isinstance(p, bytes))
        self._stuffed = [p if isinstance(p, str) else dots.stuffed_lines(p) for p in self._pieces]
        self.names = frozenset(p for p in self._pieces if isinstance(p, str))

    def fill(self, encoded: Mapping[str, bytes], *, stuffed: bool = False) -> list[bytes]:
        """The body's chunks, ``encoded[name]`` in each hole (stuffed like the pieces)."""
        pieces = self._stuffed if stuffed else self._pieces
        return [encoded[p] if isinstance(p, str) else p for p in pieces]


def _value(text: str, stuffed: bool) -> bytes:
    """One filled-in value, encoded (and dot-stuffed) like the pieces around it."""
    if _PLAIN_VALUE.fullmatch(text):  # most values (URLs, names): QP leaves them as they are
        return text.encode("ascii") + b"=\r\n"
    encoded = _qp(text)
    return dots.stuffed_lines(encoded) if stuffed else encoded


class Signer:
    """DKIM signer, when a selector, domain and key file are configured."""

    def __init__(self, settings: Settings) -> None:
        self.selector = settings.dkim_selector.encode()
        self.domain = settings.dkim_domain.encode()
        assert settings.dkim_key_file is not None
        try:
            self.key = settings.dkim_key_file.read_bytes()
        except OSError as exc:
            raise NewsletterError(f"DKIM key {settings.dkim_key_file}: {exc.strerror}") from None
        import dkim  # optional dependency: only needed when signing

        self._dkim = dkim

    def sign(self, data: bytes) -> bytes:
        present = {
            line.split(b":", 1)[0].strip().lower()
            for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if line and line[:1] not in b" \t"
        }
        headers = [h for h in DKIM_HEADERS if h.lower() in present]
        signature = self._dkim.sign(
            data, self.selector, self.domain, self.key, include_headers=headers, linesep=b"\r\n"
        )
        return signature + data


def signer_for(settings: Settings) -> Signer | None:
    if settings.dkim_selector and settings.dkim_domain and settings.dkim_key_file:
        return Signer(settings)
    return None


class EditionMessage:
    """One edition, ready to be addressed to many recipients cheaply.

    ``holes`` are the edition's own (``placeholders.Holes``): text that merely looks like a
    hole, from an article or a name, is sent as text. ``render`` fills the holes
    (HTML-escaped in the HTML part), writes the per-recipient headers, and returns the
    bytes to hand to SMTP plus the Message-ID; ``render_stuffed`` returns them as DATA
    carries them. Without ``list_id`` it is a one-off message (no List-* headers), e.g. a
    confirmation.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        subject: str,
        html: str,
        text: str,
        list_id: tuple[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        holes: placeholders.Holes = placeholders.LEGACY,
    ) -> None:
        self.domain = settings.sender_domain
        self._html = _EncodedBody(_normalise(html), holes)
        self._text = _EncodedBody(_normalise(text), holes)
        boundary = f"=_nl_{secrets.token_hex(12)}"  # "=" never occurs in QP bodies
        self._signer = signer_for(settings)
        fixed = [
            ("From", format_address(*_name_and_address(settings.from_addr))),
            ("Subject", encode_header_text(subject)),
        ]
        if settings.reply_to:
            fixed.append(("Reply-To", format_address(*_name_and_address(settings.reply_to))))
        if list_id is not None:
            ident, list_phrase = list_id
            # formataddr quotes or encodes the phrase: RFC 2919 allows no bare ',' or ':'.
            label = phrase(list_phrase)
            fixed.append(("List-Id", f"{label} <{one_line(ident)}>" if label else f"<{ident}>"))
        for name, value in (extra_headers or {}).items():
            fixed.append((name, one_line(value)))
        for name, value in fixed:
            _check_lines(name, value)
        self._fixed = "".join(f"{name}: {value}{CRLF}" for name, value in fixed)
        self._is_list = list_id is not None
        self._mime = (
            f"MIME-Version: 1.0{CRLF}"
            f'Content-Type: multipart/alternative; boundary="{boundary}"{CRLF}{CRLF}'
        )
        self._plain_head, self._html_head = (
            (
                f"{lead}--{boundary}{CRLF}"
                f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
                f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
            ).encode("ascii")
            for lead, subtype in (("", "plain"), (CRLF, "html"))
        )
        self._end = f"{CRLF}--{boundary}--{CRLF}".encode("ascii")

    def render(
        self,
        *,
        to_email: str,
        to_name: str = "",
        unsubscribe_url: str = "",
        preferences_url: str = "",
        unsubscribe_mailto: str = "",
    ) -> tuple[bytes, str]:
        message_id = make_message_id(self.domain)
        chunks = self._chunks(
            message_id, to_email, to_name, unsubscribe_url, preferences_url, unsubscribe_mailto
        )
        data = b"".join(chunks)
        if self._signer is not None:
            data = self._signer.sign(data)
        return data, message_id

    def render_stuffed(
        self,
        *,
        to_email: str,
        to_name: str = "",
        unsubscribe_url: str = "",
        preferences_url: str = "",
        unsubscribe_mailto: str = "",
    ) -> tuple[bytes, str]:
        """What ``render`` makes, as DATA carries it (``dots.dot_stuffed(data) + dots.END``),
        without searching the whole body again: only the values and headers of this message
        are. A DKIM signature covers the unstuffed message, so a signed one is stuffed whole."""
        recipient = (to_email, to_name, unsubscribe_url, preferences_url, unsubscribe_mailto)
        message_id = make_message_id(self.domain)
        if self._signer is not None:
            data = self._signer.sign(b"".join(self._chunks(message_id, *recipient)))
            return dots.dot_stuffed(data) + dots.END, message_id
        chunks = self._chunks(message_id, *recipient, stuffed=True)
        chunks.append(dots.END)
        return b"".join(chunks), message_id

    def _chunks(
        self,
        message_id: str,
        to_email: str,
        to_name: str,
        unsubscribe_url: str,
        preferences_url: str,
        unsubscribe_mailto: str,
        *,
        stuffed: bool = False,
    ) -> list[bytes]:
        name = one_line(to_name)
        head = [self._fixed, f"To: {_address(_phrase(name), to_email)}{CRLF}"]
        head.append(f"Date: {_date()}{CRLF}Message-ID: {message_id}{CRLF}")
        if self._is_list:
            head.append(_list_unsubscribe(unsubscribe_url, unsubscribe_mailto))
        head.append(self._mime)
        encoded_head = "".join(head).encode("ascii")
        text: dict[str, bytes] = {}
        html_values: dict[str, bytes] = {}
        for key, value in (
            ("UNSUBSCRIBE_URL", unsubscribe_url),
            ("PREFERENCES_URL", preferences_url),
            ("NAME", name),
        ):
            text[key] = _value(value, stuffed)
            # Most values (every URL we make) read the same escaped: one encoding serves both.
            if _HTML_SPECIAL.search(value) is None:
                html_values[key] = text[key]
            else:
                html_values[key] = _value(html.escape(value, quote=True), stuffed)
        return [
            dots.stuffed_lines(encoded_head) if stuffed else encoded_head,
            self._plain_head,
            *self._text.fill(text, stuffed=stuffed),
            self._html_head,
            *self._html.fill(html_values, stuffed=stuffed),
            self._end,
        ]


def _list_unsubscribe(unsubscribe_url: str, unsubscribe_mailto: str) -> str:
    if not unsubscribe_url:
        raise ValueError("a list message needs its unsubscribe URL")
    targets = [f"<{one_line(unsubscribe_url)}>"]
    if unsubscribe_mailto:
        targets.append(f"<{one_line(unsubscribe_mailto)}>")
    # Written by hand: a URL is never folded (that would break one-click), only the gap
    # between the two targets is, when both together would pass 998 octets.
    joined = ", ".join(targets)
    if len(joined) + len("List-Unsubscribe: ") > MAX_LINE:
        joined = f",{CRLF} ".join(targets)
        _check_lines("List-Unsubscribe", joined)
    elif not joined.isascii():  # one line of at most 998 characters, but maybe more octets
        _check_lines("List-Unsubscribe", joined)
    return f"List-Unsubscribe: {joined}{CRLF}List-Unsubscribe-Post: {_ONE_CLICK}{CRLF}"


def _check_lines(name: str, value: str) -> None:
    """Refuse a header that would still have a line over 998 octets (a configured value)."""
    lines = f"{name}: {value}".split(CRLF)
    if any(len(line.encode()) > MAX_LINE for line in lines):
        raise AddressError(f"the {name} header would have a line over {MAX_LINE} octets")


def _name_and_address(value: str) -> tuple[str, str]:
    name, address = parseaddr(value)
    if not address:
        raise AddressError(f"not an address: {value!r}")
    return name, address


def build_single(
    settings: Settings,
    *,
    to_email: str,
    to_name: str,
    subject: str,
    html: str,
    text: str,
) -> tuple[bytes, str]:
    """A one-off message (no List-* headers, no holes): bytes for SMTP and its Message-ID."""
    one_off = EditionMessage(
        settings, subject=subject, html=html, text=text, holes=placeholders.NO_HOLES
    )
    return one_off.render(to_email=to_email, to_name=to_name)
