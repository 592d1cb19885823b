"""The signed links in every email and on every page: one place builds them, one checks them.

Tokens are short (see ``tokens``) so URLs stay well under header line limits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

from newsletter import tokens
from newsletter.config import Settings
from newsletter.errors import ConfigError, InvalidToken

UNSUBSCRIBE = "unsub"
PREFERENCES = "prefs"
CONFIRM = "confirm"
BOUNCE = "bounce"


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(settings: Settings) -> str | None:
    """None for an https base URL; a warning for plain http on loopback; else ConfigError.

    Links in every email point at the base URL, so a plain-http one would send tokens and
    sign-up data in clear text over the internet. ``serve`` and every command that mails
    links ask this first, so nobody is mailed a link the service would not answer.
    """
    parts = urlsplit(settings.base_url)
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and is_loopback(parts.hostname or ""):
        return (
            f"base_url {settings.base_url} is plain http on loopback: fine for local use and"
            " tests, but links in real emails need an https address"
        )
    raise ConfigError(
        f"base_url {settings.base_url!r} must use https (plain http is accepted only on"
        " loopback, e.g. http://127.0.0.1:8080)"
    )


# The fixed start of each Settings' links: its base URL and its mailto up to the token. A
# Settings is frozen, so they never change; the entry keeps the object, so its id is not
# reused while the entry lives. A process has few Settings (tests make many: kept small).
_PREFIXES: dict[int, tuple[Settings, str, str]] = {}


def _prefixes(settings: Settings) -> tuple[str, str]:
    entry = _PREFIXES.get(id(settings))
    if entry is None or entry[0] is not settings:
        mailto = f"mailto:{unsubscribe_mailbox(settings)}?subject={quote('unsubscribe ')}"
        entry = (settings, settings.base_url.rstrip("/"), mailto)
        if len(_PREFIXES) >= 32:
            _PREFIXES.clear()
        _PREFIXES[id(settings)] = entry
    return entry[1], entry[2]


def _base(settings: Settings) -> str:
    return _prefixes(settings)[0]


def unsubscribe_token(key: bytes, subscriber_id: int, topic_id: int) -> str:
    return tokens.make(key, UNSUBSCRIBE, subscriber_id, topic_id)


def unsubscribe_url(settings: Settings, key: bytes, subscriber_id: int, topic_id: int) -> str:
    return f"{_base(settings)}/u/{unsubscribe_token(key, subscriber_id, topic_id)}"


def preferences_token(key: bytes, subscriber_id: int) -> str:
    return tokens.make(key, PREFERENCES, subscriber_id)


def preferences_url(settings: Settings, key: bytes, subscriber_id: int) -> str:
    return f"{_base(settings)}/p/{preferences_token(key, subscriber_id)}"


def confirm_url(settings: Settings, key: bytes, subscriber_id: int, expires_at: int) -> str:
    token = tokens.make(key, CONFIRM, subscriber_id, expires_at=expires_at)
    return f"{_base(settings)}/confirm/{token}"


def read_unsubscribe(keys: bytes | Sequence[bytes], token: str) -> tuple[int, int]:
    """(subscriber id, topic id) of a genuine unsubscribe token, else InvalidToken."""
    subscriber_id, topic_id = tokens.check(keys, UNSUBSCRIBE, token, count=2).values
    return subscriber_id, topic_id


def read_preferences(keys: bytes | Sequence[bytes], token: str) -> int:
    """The subscriber id of a genuine preferences token, else InvalidToken."""
    return tokens.check(keys, PREFERENCES, token, count=1).values[0]


def read_confirm(
    keys: bytes | Sequence[bytes], token: str, *, now: float | None = None
) -> tokens.TokenData:
    """The subscriber id and expiry of a genuine, unexpired confirmation token."""
    return tokens.check(keys, CONFIRM, token, count=1, expires=True, now=now)


def unsubscribe_mailbox(settings: Settings) -> str:
    return settings.unsubscribe_mailto or f"unsubscribe@{settings.sender_domain}"


def unsubscribe_mailto(settings: Settings, key: bytes, subscriber_id: int, topic_id: int) -> str:
    """``mailto:`` for List-Unsubscribe; the subject carries the same signed token."""
    token = unsubscribe_token(key, subscriber_id, topic_id)
    return _prefixes(settings)[1] + quote(token)


def recipient_links(
    settings: Settings, key: bytes, subscriber_id: int, topic_id: int
) -> tuple[str, str, str]:
    """(unsubscribe URL, preferences URL, unsubscribe mailto) of one recipient of one topic's
    edition: what the three functions give, with the unsubscribe token made once."""
    base, mailto = _prefixes(settings)
    unsubscribe = unsubscribe_token(key, subscriber_id, topic_id)
    # A token is base 36, "_", "-", "." and URL-safe base64: nothing ``quote`` changes.
    return (
        f"{base}/u/{unsubscribe}",
        f"{base}/p/{preferences_token(key, subscriber_id)}",
        mailto + unsubscribe,
    )


def bounce_token(key: bytes, subscriber_id: int, edition_id: int) -> str:
    return tokens.make(key, BOUNCE, subscriber_id, edition_id)


def envelope_sender(settings: Settings, key: bytes, subscriber_id: int, edition_id: int) -> str:
    """The MAIL FROM of one message: VERP-style ``bounces+<token>@domain`` when
    ``mail.bounce_address`` is set, so a bounce names its recipient and edition even when the
    relay rewrites or hides the address; else the From address."""
    if not settings.bounce_address:
        return settings.sender_address
    local, _, domain = settings.bounce_address.rpartition("@")
    return f"{local}+{bounce_token(key, subscriber_id, edition_id)}@{domain}"


def read_bounce_address(keys: bytes | Sequence[bytes], address: str) -> tuple[int, int] | None:
    """(subscriber id, edition id) from a VERP address we made, or None (forged, foreign).

    ``keys``: the current link key, then retired ones (bounces arrive days after a send)."""
    local = address.strip().strip("<>").rpartition("@")[0]
    _, plus, token = local.rpartition("+")
    if not plus:
        return None
    try:
        subscriber_id, edition_id = tokens.check(keys, BOUNCE, token, count=2).values
    except InvalidToken:
        return None
    return subscriber_id, edition_id
