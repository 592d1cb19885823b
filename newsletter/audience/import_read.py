"""Reading the subscriber files staff actually have: encodings, delimiters, addresses.

Real files are messy: Finnish Excel saves Windows-1252 with semicolons (sometimes with a
``sep=;`` line), other tools write UTF-8 with or without a BOM, or UTF-16. Rows come out
with the line number they start on, so every problem the import reports names its line.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from newsletter.audience.subscribers import normalize_email
from newsletter.errors import InvalidEmail, NewsletterError

DELIMITERS = (",", ";", "\t")


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, or else Windows-1252 (Finnish Excel).

    A file that is neither is refused up front: Windows-1252 leaves five byte values
    undefined, and meeting one in the middle of the import would be a crash, not a report.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if _first_bad_byte(handle, "utf-8") is None:
            return "utf-8"
        bad = _first_bad_byte(handle, "cp1252")
        if bad is None:
            return "cp1252"
        handle.seek(bad)
        byte = handle.read(1)[0]
    raise NewsletterError(
        f"{path.name}: byte {byte:#04x} at offset {bad} is neither UTF-8 nor Windows-1252:"
        " save the file as CSV UTF-8"
    )


def _first_bad_byte(handle: BinaryIO, encoding: str) -> int | None:
    """The offset of the first byte ``encoding`` cannot decode, or None; read in chunks."""
    handle.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    while chunk := handle.read(1 << 20):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            return offset + exc.start
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset - 1  # a multi-byte sequence cut off by the end of the file
    return None


def _delimiter(first_line: str) -> str:
    """The delimiter the header line uses most (outside quotes); comma for one column."""
    outside = re.sub(r'"[^"]*"', "", first_line)
    counts = {d: outside.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_rows(
    path: Path, on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) for every record, header included; ``on_bytes`` hears
    how many bytes were read, every few thousand rows (for a progress bar)."""
    encoding = detect_encoding(path)
    previous = 0
    with path.open(encoding=encoding, newline="") as handle:
        try:
            first_line = handle.readline()
            # Excel may start a file with "sep=;" to name its delimiter: honour it, skip it.
            hint = first_line.rstrip("\r\n")
            skipped = int(hint[:4].lower() == "sep=" and len(hint) == 5)
            if skipped:
                delimiter = hint[4]
            else:
                delimiter = _delimiter(first_line)
                handle.seek(0)
            reader = csv.reader(handle, delimiter=delimiter)
            previous = skipped
            for count, row in enumerate(reader):
                yield previous + 1, row
                previous = skipped + reader.line_num
                if on_bytes is not None and count % 4096 == 0:
                    on_bytes(handle.buffer.tell())
        except (csv.Error, UnicodeDecodeError) as exc:
            # UTF-16 is only checked as it is read; the line is where decoding stopped.
            raise NewsletterError(f"{path.name}: line {previous + 1}: {exc}") from None


class AddressChecker:
    """``subscribers.normalize_email`` for a whole file, checking each domain only once.

    Validation is most of an import's time, and most of that is email-validator's
    character-by-character IDNA check of the domain - yet a list of 100,000 people has only
    a few thousand domains. So a plain ASCII address is checked in two email-validator
    calls whose results are combined: the local part against a 4-character probe domain,
    and (once per distinct domain, cached) the domain behind a 1-character local part.
    Anything unusual (non-ASCII, quoted, a domain literal, near the length limit) takes
    the full path. The outcome, errors included, is exactly normalize_email's: a test
    compares the two on valid and invalid addresses.
    """

    PROBE_DOMAIN = "a.fi"
    _UNUSUAL = re.compile(r'["\[\]\\\s\x00-\x1f\x7f]')
    # RFC 5322 dot-atom: atext runs joined by single dots, no dot first or last.
    _ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
    _DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*\Z")

    def __init__(self) -> None:
        self._domains: dict[str, str | InvalidEmail] = {}

    def __call__(self, raw: str) -> str:
        text = raw.strip()
        local, at, domain = text.rpartition("@")
        if (
            not (at and local and domain)
            or "@" in local
            or len(text) > 200
            or not text.isascii()
            or any(ch in raw for ch in "\r\n\0")
            or self._UNUSUAL.search(text)
        ):
            return normalize_email(raw)
        # The local part first: email-validator reports its errors before the domain's.
        # A plain dot-atom (nearly every real address) is valid as it is; anything else
        # gets email-validator's verdict and its error message.
        if len(local) <= 64 and self._DOT_ATOM.match(local):
            checked_local = local
        else:
            checked_local = normalize_email(f"{local}@{self.PROBE_DOMAIN}").rpartition("@")[0]
        checked_domain = self._domains.get(domain)
        if checked_domain is None:
            try:
                checked_domain = normalize_email(f"x@{domain}").rpartition("@")[2]
            except InvalidEmail as exc:
                checked_domain = exc
            self._domains[domain] = checked_domain
        if isinstance(checked_domain, InvalidEmail):
            raise InvalidEmail(str(checked_domain))
        return f"{checked_local}@{checked_domain}"
