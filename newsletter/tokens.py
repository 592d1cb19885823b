"""Short HMAC-signed tokens for links in emails and web forms.

A token is ``<fields>.<mac>``: the fields (integers in base 36, plus an optional expiry)
are readable, the MAC binds them to a purpose such as ``unsub`` or ``confirm``, so a token
made for one purpose is worthless for another. 96-bit MACs keep URLs short yet unforgeable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from newsletter.errors import InvalidToken

_MAC_BYTES = 12
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class TokenData:
    values: tuple[int, ...]
    expires_at: int | None


def _b36(number: int) -> str:
    if number < 0:
        raise ValueError("token values must not be negative")
    digits = ""
    while True:
        number, rem = divmod(number, 36)
        digits = _ALPHABET[rem] + digits
        if number == 0:
            return digits


def _mac(key: bytes, purpose: str, body: str) -> str:
    digest = hmac.new(key, f"{purpose}:{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_MAC_BYTES]).decode().rstrip("=")


def make(key: bytes, purpose: str, *values: int, expires_at: int | None = None) -> str:
    parts = [_b36(v) for v in values]
    if expires_at is not None:
        parts.append("x" + _b36(expires_at))
    body = "-".join(parts)
    return f"{body}.{_mac(key, purpose, body)}"


def check(key: bytes, purpose: str, token: str, *, now: float | None = None) -> TokenData:
    """The token's values, or InvalidToken when it is forged, altered, malformed or expired."""
    # Tokens arrive from URLs and mail subjects: anything that is not the short ASCII we make
    # is refused here, as compare_digest raises TypeError on non-ASCII text.
    if not isinstance(token, str) or len(token) > 200 or not token.isascii():
        raise InvalidToken("malformed token")
    body, dot, mac = token.partition(".")
    if not dot or not body:
        raise InvalidToken("malformed token")
    if not hmac.compare_digest(mac, _mac(key, purpose, body)):
        raise InvalidToken("invalid token")
    values: list[int] = []
    expires_at: int | None = None
    try:
        for part in body.split("-"):
            if part.startswith("x"):
                expires_at = int(part[1:], 36)
            else:
                values.append(int(part, 36))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if expires_at is not None and (time.time() if now is None else now) > expires_at:
        raise InvalidToken("expired token")
    return TokenData(tuple(values), expires_at)
