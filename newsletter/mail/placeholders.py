"""Per-recipient placeholders.

An edition is rendered once; these markers stand where per-recipient values go and are
filled at send time. The ``%%NAME%%`` form was chosen because MJML and premailer leave it
alone, also inside ``href`` (premailer URL-encodes ``{{ ... }}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

UNSUBSCRIBE_URL = "%%UNSUBSCRIBE_URL%%"
PREFERENCES_URL = "%%PREFERENCES_URL%%"
NAME = "%%NAME%%"

ALL = (UNSUBSCRIBE_URL, PREFERENCES_URL, NAME)
PATTERN = re.compile(r"%%(UNSUBSCRIBE_URL|PREFERENCES_URL|NAME)%%")


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder with ``values[placeholder]`` in one pass.

    ``values`` is keyed by the full marker (``placeholders.NAME`` ...). The caller escapes
    values for the target format (HTML or plain text) first.
    """
    return PATTERN.sub(lambda m: values[m.group(0)], template)


def remaining(text: str) -> list[str]:
    """Markers still present in ``text`` (for checks and tests)."""
    return [m.group(0) for m in PATTERN.finditer(text)]
