"""The checks every real send passes first, in one place: `newsletter send` and
`newsletter digest` both call ``check``.

Today that is the refusal of `init`'s example identity and of a base URL mail must not link
to; the blocking part of `newsletter check` (content and template checks) belongs here too.
Test copies (`send --to`) are not real sends: they only warn (``warnings``).
"""

from __future__ import annotations

from sqlite_utils import Database

from newsletter import config, effective, links
from newsletter.config import Settings


def check(db: Database, settings: Settings, edition_id: int) -> None:
    """Raise a NewsletterError (one line) when edition ``edition_id`` must not go out."""
    effective.refuse_example_identity(settings)
    links.check_base_url(settings)


def warnings(settings: Settings) -> list[str]:
    """What a test copy goes out with although a real send would refuse it."""
    left = [k for k in config.example_values_in_use(settings) if k in effective.IDENTITY_KEYS]
    if not left:
        return []
    return [f"{', '.join(left)} still hold init's example values: a real send would refuse"]
