"""The signed links in every email and on every page: one place builds them, one checks them.

Tokens are short (see ``tokens``) so URLs stay well under header line limits.
"""

from __future__ import annotations

from urllib.parse import quote

from newsletter import tokens
from newsletter.config import Settings

UNSUBSCRIBE = "unsub"
PREFERENCES = "prefs"
CONFIRM = "confirm"


def _base(settings: Settings) -> str:
    return settings.base_url.rstrip("/")


def unsubscribe_token(key: bytes, subscriber_id: int, topic_id: int) -> str:
    return tokens.make(key, UNSUBSCRIBE, subscriber_id, topic_id)


def unsubscribe_url(settings: Settings, key: bytes, subscriber_id: int, topic_id: int) -> str:
    return f"{_base(settings)}/u/{unsubscribe_token(key, subscriber_id, topic_id)}"


def preferences_url(settings: Settings, key: bytes, subscriber_id: int) -> str:
    return f"{_base(settings)}/p/{tokens.make(key, PREFERENCES, subscriber_id)}"


def confirm_url(settings: Settings, key: bytes, subscriber_id: int, expires_at: int) -> str:
    token = tokens.make(key, CONFIRM, subscriber_id, expires_at=expires_at)
    return f"{_base(settings)}/confirm/{token}"


def unsubscribe_mailbox(settings: Settings) -> str:
    return settings.unsubscribe_mailto or f"unsubscribe@{settings.sender_domain}"


def unsubscribe_mailto(settings: Settings, key: bytes, subscriber_id: int, topic_id: int) -> str:
    """``mailto:`` for List-Unsubscribe; the subject carries the same signed token."""
    token = unsubscribe_token(key, subscriber_id, topic_id)
    return f"mailto:{unsubscribe_mailbox(settings)}?subject={quote('unsubscribe ' + token)}"
