"""What each column of an imported file means: the person, their language, their consent.

Other tools write consent in their own words: listmonk ``status`` (enabled, disabled,
blocklisted), Sendy ``Status`` (Subscribed, Unsubscribed, Bounced, Marked as spam ...) and
``GDPR``, Ghost ``subscribed_to_emails``, Substack ``email_disabled``, Mailchimp's separate
unsubscribed and cleaned exports (``UNSUB_TIME``, ``CLEAN_TIME``), and this tool's own
export (``status``, ``topics``, ``unsubscribed_from``, ``attributes``). Each row becomes one
``Record`` whose ``state`` says whether the person may be subscribed at all; every column
not used for a field is kept as the person's attributes, so nothing the other tool knew is
lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from newsletter import i18n
from newsletter.audience.import_read import AddressChecker
from newsletter.audience.subscribers import clean_name, email_key
from newsletter.errors import InvalidEmail, NewsletterError

# Header names are compared after casefolding and collapsing spaces, "_" and "-" to one space.
EMAIL_HEADERS = {
    "email", "e mail", "email address", "e mail address", "mail",
    "sähköposti", "sähköpostiosoite", "sahkoposti", "e post", "e postadress",
}  # fmt: skip
NAME_HEADERS = {"name", "full name", "nimi", "koko nimi", "namn", "fullständigt namn"}
FIRST_NAME_HEADERS = {"first name", "firstname", "fname", "etunimi", "förnamn"}
LAST_NAME_HEADERS = {"last name", "lastname", "lname", "sukunimi", "efternamn"}
LANG_HEADERS = {"lang", "language", "locale", "kieli", "språk", "sprak"}
# The consent columns, by field. "status": listmonk, Sendy, this tool; "subscribed": Ghost
# (true = gets mail); "disabled": Substack (true = gets none); "consent": Sendy's GDPR
# (no = no recorded consent); "unsub"/"clean": Mailchimp's unsubscribed/cleaned exports.
CONSENT_FIELDS = {
    "status": {"status", "member status", "subscriber status", "tila"},
    "subscribed": {"subscribed to emails", "subscribed"},
    "disabled": {"email disabled"},
    "consent": {"gdpr", "consent", "marketing consent", "suostumus"},
    "unsub": {"unsub time"},
    "clean": {"clean time"},
}
TOPICS_HEADERS = {"topics", "aiheet"}  # this tool: confirmed topics, slugs joined by ";"
LEFT_TOPICS_HEADERS = {"unsubscribed from"}  # this tool: topics the person left
ATTRIBUTES_HEADERS = {"attributes", "attribs"}  # listmonk and this tool: a JSON object
DERIVED_HEADERS = {"subscribed at"}  # this tool's export computes it: never imported

# From "may be mailed once consent is there" to "must never be mailed"; a row takes the
# strongest state any of its columns gives.
STATES = ("subscribed", "pending", "unsubscribed", "bounced", "blocklisted")
LEFT_STATES = ("unsubscribed", "bounced", "blocklisted")
STATUS_VALUES = {
    "subscribed": "subscribed", "enabled": "subscribed", "active": "subscribed",
    "confirmed": "subscribed", "opted in": "subscribed", "soft bounced": "subscribed",
    "unconfirmed": "pending", "pending": "pending",
    "unsubscribed": "unsubscribed", "disabled": "unsubscribed", "inactive": "unsubscribed",
    "opted out": "unsubscribed", "archived": "unsubscribed",
    "bounced": "bounced", "hard bounced": "bounced", "cleaned": "bounced",
    "blocklisted": "blocklisted", "blacklisted": "blocklisted", "blocked": "blocklisted",
    "marked as spam": "blocklisted", "spam": "blocklisted", "complained": "blocklisted",
}  # fmt: skip
TRUE_VALUES = {"true", "yes", "y", "1", "t", "kyllä", "k", "ja"}
FALSE_VALUES = {"false", "no", "n", "0", "f", "ei", "nej"}


@dataclass(frozen=True, slots=True)
class Invalid:
    line: int
    email: str
    error: str


@dataclass(frozen=True, slots=True)
class Record:
    line: int
    key: str  # case-insensitive identity (subscribers.email_key)
    email: str  # normalised
    name: str | None  # None: not given, keep what is stored
    lang: str | None
    state: str = "subscribed"  # one of STATES
    topics: tuple[str, ...] = ()  # topic slugs or names given in the row
    left_topics: tuple[str, ...] = ()  # topics the row says the person left
    attributes: str = ""  # a JSON object, "" for none


@dataclass(frozen=True)
class Columns:
    email: int
    name: int | None = None
    first: int | None = None
    last: int | None = None
    lang: int | None = None
    consent: tuple[tuple[str, int], ...] = ()  # (CONSENT_FIELDS key, index)
    topics: int | None = None
    left_topics: int | None = None
    attributes: int | None = None
    extra: tuple[tuple[int, str], ...] = ()  # (index, header) kept as attributes
    ignored: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    has_header: bool = True

    def used(self) -> dict[str, str]:
        """Each field this import fills, with the header(s) it comes from."""

        def named(*indexes: int | None) -> str:
            return " + ".join(self.headers[i] for i in indexes if i is not None)

        fields = {"email": named(self.email) if self.has_header else "(no header: column 1)"}
        if self.name is not None:
            fields["name"] = named(self.name)
        elif self.first is not None or self.last is not None:
            fields["name"] = named(self.first, self.last)
        for key, index in (("lang", self.lang), ("topics", self.topics),
                           ("unsubscribed_from", self.left_topics),
                           ("attributes", self.attributes)):  # fmt: skip
            if index is not None:
                fields[key] = named(index)
        if self.consent:
            fields["consent"] = named(*(index for _, index in self.consent))
        return fields


def header_key(text: str) -> str:
    return " ".join(re.sub(r"[_\-]", " ", text.replace("\ufeff", "")).casefold().split())


def columns(header: list[str]) -> Columns:
    """The meaning of each column of a header row; raises when there is no e-mail column."""
    keys = [header_key(cell) for cell in header]
    taken: set[int] = set()

    def find(names: set[str]) -> int | None:
        index = next((i for i, key in enumerate(keys) if key in names and i not in taken), None)
        if index is not None:
            taken.add(index)
        return index

    email = find(EMAIL_HEADERS)
    if email is None:
        # A bare list of addresses without a header row.
        at = next((i for i, cell in enumerate(header) if "@" in cell), None)
        if at is not None:
            return Columns(email=at, has_header=False)
        raise NewsletterError(
            "no e-mail column: the header must name one of email, e-mail, Email Address,"
            f" sähköposti, e-post (found: {', '.join(h.strip() for h in header) or 'nothing'})"
        )
    found = {
        "name": find(NAME_HEADERS), "first": find(FIRST_NAME_HEADERS),
        "last": find(LAST_NAME_HEADERS), "lang": find(LANG_HEADERS),
        "topics": find(TOPICS_HEADERS), "left_topics": find(LEFT_TOPICS_HEADERS),
        "attributes": find(ATTRIBUTES_HEADERS),
    }  # fmt: skip
    consent = []
    for field_name, names in CONSENT_FIELDS.items():
        index = find(names)
        if index is not None:
            consent.append((field_name, index))
    extra, ignored = [], []
    seen_names: set[str] = set()
    for index, cell in enumerate(header):
        if index in taken:
            continue
        name = " ".join(cell.replace("\ufeff", "").split())
        if not name or keys[index] in DERIVED_HEADERS or name.casefold() in seen_names:
            ignored.append(name or f"(column {index + 1}, no header)")
            continue
        seen_names.add(name.casefold())
        extra.append((index, name))
    return Columns(
        email=email, **found, consent=tuple(consent), extra=tuple(extra),
        ignored=tuple(ignored), headers=tuple(" ".join(h.split()) for h in header),
    )  # fmt: skip


def parse_lang(raw: str) -> str | None:
    """``fi``/``sv``/``en`` from codes or names (``FI``, ``sv-FI``, ``suomi``); None if empty."""
    if not raw.strip():
        return None
    found = i18n.supported_language(raw)
    if found is None:
        raise InvalidEmail(f"unknown language {raw.strip()!r}: use fi, sv or en")
    return found


def _flag(raw: str, header: str) -> bool | None:
    text = raw.strip().casefold()
    if not text:
        return None
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise InvalidEmail(f"{header}: {raw.strip()!r} is neither true nor false")


def _state(row: list[str], cols: Columns) -> str:
    """The strongest consent state the row's consent columns give (see STATES)."""
    states = ["subscribed"]
    for field_name, index in cols.consent:
        raw = cell(row, index)
        header = cols.headers[index]
        if field_name == "status":
            text = " ".join(raw.casefold().split())
            if text:
                if text not in STATUS_VALUES:
                    raise InvalidEmail(f"{header}: unknown status {raw.strip()!r}")
                states.append(STATUS_VALUES[text])
        elif field_name in ("unsub", "clean"):
            if raw.strip():
                states.append("unsubscribed" if field_name == "unsub" else "bounced")
        else:
            value = _flag(raw, header)
            if value is not None:
                gets_mail = not value if field_name == "disabled" else value
                if not gets_mail:
                    states.append("pending" if field_name == "consent" else "unsubscribed")
    return max(states, key=STATES.index)


def cell(row: list[str], index: int | None) -> str:
    text = row[index] if index is not None and index < len(row) else ""
    # Undo the apostrophe our CSV export puts before a formula-like cell.
    if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@"):
        return text[1:]
    return text


def _name(row: list[str], cols: Columns) -> str | None:
    if cols.name is not None:
        text = cell(row, cols.name)
    else:
        text = f"{cell(row, cols.first)} {cell(row, cols.last)}"
    return clean_name(text) or None


def _slugs(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in re.split(r"[;,]", text) if part.strip()))


def _attributes(row: list[str], cols: Columns) -> dict[str, object]:
    """The unused columns (non-empty cells) and the keys of a JSON attributes column."""
    found: dict[str, object] = {}
    if cols.attributes is not None:
        raw = cell(row, cols.attributes).strip()
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                found.update(parsed)
            elif raw not in ("{}", "null"):
                found[cols.headers[cols.attributes]] = raw  # kept as it was written
    for index, header in cols.extra:
        value = cell(row, index).strip()
        if value:
            found[header] = value
    return found


def _lang(row: list[str], cols: Columns, attributes: dict[str, object]) -> tuple[str | None, str]:
    """(language or None, the unsupported value given, "" if none)."""
    candidates = [cell(row, cols.lang)] if cols.lang is not None else []
    candidates += [
        value for key, value in attributes.items()
        if isinstance(value, str) and header_key(key) in LANG_HEADERS
    ]  # fmt: skip
    unknown = ""
    for raw in candidates:
        try:
            found = parse_lang(raw)
        except InvalidEmail:
            unknown = unknown or raw.strip()
            continue
        if found:
            return found, ""
    return None, unknown


def read_records(
    cols: Columns,
    rows: Iterator[tuple[int, list[str]]],
    invalid: list[Invalid],
    warnings: list[Invalid],
) -> Iterator[Record]:
    """The valid rows as records, in file order, duplicates included; the invalid ones are
    appended to ``invalid``, an unsupported language (the default is used) to ``warnings``.
    Blank lines (and Excel's rows of empty cells) are skipped."""
    check = AddressChecker()
    for line, row in rows:
        if not any(text.strip() for text in row):
            continue
        raw = cell(row, cols.email)
        try:
            email = check(raw)  # refuses non-ASCII local parts (no SMTPUTF8 when sending)
            state = _state(row, cols)
        except InvalidEmail as exc:
            invalid.append(Invalid(line, raw.strip(), str(exc)))
            continue
        attributes = _attributes(row, cols)
        lang, unknown = _lang(row, cols, attributes)
        if unknown:
            warnings.append(
                Invalid(line, email, f"unsupported language {unknown!r}: the default is used")
            )
        yield Record(
            line=line, key=email_key(email), email=email, name=_name(row, cols), lang=lang,
            state=state, topics=_slugs(cell(row, cols.topics)),
            left_topics=_slugs(cell(row, cols.left_topics)),
            attributes=json.dumps(attributes, ensure_ascii=False) if attributes else "",
        )  # fmt: skip
