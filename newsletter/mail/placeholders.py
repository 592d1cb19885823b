"""Per-recipient holes: where an edition, rendered once, gets each recipient's own values.

A hole is ``%%NAME.<marker>%%``, where the marker is 128 random bits drawn when the edition
is built, after its content was fixed, and stored with it. Only the template can put a hole
in, since only it is given the marker: an article URL, title, summary, image or alt text,
an intro, a subject or a name written ``%%PREFERENCES_URL%%`` (or with any other marker)
stays text and is sent as it is, and a value filled in is never read again for holes.
(MJML and premailer leave the ``%%...%%`` form alone, also inside ``href``; premailer
URL-encodes ``{{ ... }}``.)

Editions stored before holes were sealed have the bare ``%%NAME%%`` form (``LEGACY``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

NAMES = ("UNSUBSCRIBE_URL", "PREFERENCES_URL", "NAME")
# The legacy markers of editions built before holes were sealed.
UNSUBSCRIBE_URL = "%%UNSUBSCRIBE_URL%%"
PREFERENCES_URL = "%%PREFERENCES_URL%%"
NAME = "%%NAME%%"
ALL = (UNSUBSCRIBE_URL, PREFERENCES_URL, NAME)

_ALTERNATIVES = "|".join(NAMES)
_MARKER = re.compile(r"[0-9a-f]{32}")
# Any hole of any edition: for checks that nothing was left unfilled, and for tests.
_ANY = re.compile(rf"%%({_ALTERNATIVES})(?:\.([0-9a-f]{{32}}))?%%")


@dataclass(frozen=True)
class Holes:
    """The holes of one edition. ``marker`` None: the legacy form; ``sealed=False``: none."""

    marker: str | None
    sealed: bool = True

    def __post_init__(self) -> None:
        if self.marker is not None and not _MARKER.fullmatch(self.marker):
            raise ValueError("a hole marker is 32 lower-case hex digits")

    @classmethod
    def new(cls) -> Holes:
        return cls(secrets.token_hex(16))

    def hole(self, name: str) -> str:
        if name not in NAMES:
            raise ValueError(name)
        return f"%%{name}%%" if self.marker is None else f"%%{name}.{self.marker}%%"

    @property
    def unsubscribe_url(self) -> str:
        return self.hole("UNSUBSCRIBE_URL")

    @property
    def preferences_url(self) -> str:
        return self.hole("PREFERENCES_URL")

    @property
    def name(self) -> str:
        return self.hole("NAME")

    @property
    def pattern(self) -> re.Pattern[str]:
        """Matches this edition's holes only; group 1 is the hole's name."""
        if not self.sealed:
            return re.compile(r"(?!)()")
        suffix = "" if self.marker is None else re.escape("." + self.marker)
        return re.compile(rf"%%({_ALTERNATIVES}){suffix}%%")

    def fill(self, template: str, values: Mapping[str, str]) -> str:
        """Each hole replaced by ``values[name]`` in one pass (values are not re-read).

        The caller escapes values for the target format (HTML or plain text) first.
        """
        return self.pattern.sub(lambda m: values[m.group(1)], template)

    def remaining(self, text: str) -> list[str]:
        return [m.group(0) for m in self.pattern.finditer(text)]


LEGACY = Holes(None)
NO_HOLES = Holes(None, sealed=False)  # one-off mails: nothing in them is per recipient


def found_in(text: str) -> Holes:
    """The holes a rendered body uses (its first hole's marker); LEGACY when it has none."""
    match = _ANY.search(text)
    return Holes(match.group(2)) if match else LEGACY


def fill(template: str, values: Mapping[str, str]) -> str:
    """Fill legacy holes; ``values`` keyed by the full legacy marker (``NAME`` ...)."""
    return LEGACY.fill(template, {m.strip("%"): v for m, v in values.items()})


def remaining(text: str) -> list[str]:
    """Holes of any edition still present in ``text`` (for checks and tests)."""
    return [m.group(0) for m in _ANY.finditer(text)]
