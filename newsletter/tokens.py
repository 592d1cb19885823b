"""Short HMAC-signed tokens for links in emails and web forms.

A token is ``<fields>.<mac>``: the fields (integers in base 36, ``_`` before a negative one,
joined by ``-``, then an optional expiry written ``x<base 36>``) are readable, the MAC binds
them to a purpose such as ``unsub`` or ``confirm``, so a token made for one purpose is
worthless for another. 96-bit MACs keep URLs short yet unforgeable.

The reader is told the token's shape (how many values, whether an expiry follows) by the
purpose it checks for, and reads fields by position. It once guessed instead, taking any
field starting with ``x`` for the expiry, and the base-36 text of about one id in 36 starts
with ``x`` (33, 1188-1223, ...): those people's links were refused. The written format is
unchanged, so every token ever mailed reads the same, and now reads right.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from newsletter.errors import InvalidToken

_MAC_BYTES = 12
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_DIGITS = frozenset(_ALPHABET)
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]  # "00" to "zz": 0 to 1295
_SHORT = [pair.lstrip("0") or "0" for pair in _PAIRS]  # the same numbers as written alone
_MAX_LENGTH = 200
_BLOCK = 64  # octets in a SHA-256 block: RFC 2104's B
_INNER_PAD = bytes(octet ^ 0x36 for octet in range(256))  # translate tables: key XOR pad
_OUTER_PAD = bytes(octet ^ 0x5C for octet in range(256))
_URL_SAFE = bytes.maketrans(b"+/", b"-_")  # base64's URL-safe alphabet (RFC 4648 section 5)


@dataclass(frozen=True)
class TokenData:
    values: tuple[int, ...]
    expires_at: int | None
    key_index: int = 0  # which of the given keys signed it: 0 is the current one


def _b36(number: int) -> str:
    if number < 0:
        return "_" + _b36(-number)
    if number < len(_PAIRS):
        return _SHORT[number]
    digits = ""
    while number:  # two digits a step: ids are made for every link of every recipient
        number, rem = divmod(number, len(_PAIRS))
        digits = _PAIRS[rem] + digits
    return digits.lstrip("0")


def _read_b36(text: str) -> int:
    negative = text.startswith("_")
    digits = text[1:] if negative else text
    # int(..., 36) alone would also take "+5", " 5" or "1_0": only our own spelling counts.
    if not digits or not set(digits) <= _DIGITS or (negative and digits == "0"):
        raise InvalidToken("malformed token")
    value = int(digits, 36)
    return -value if negative else value


@lru_cache(maxsize=16)
def _keyed(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 with the key's inner and outer pads already hashed (RFC 2104 section 2).

    HMAC-SHA256 of a message is then two copies and two short updates: a third of what
    ``hmac.new`` costs, which sets the key up again for every token of every recipient."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_INNER_PAD)), hashlib.sha256(key.translate(_OUTER_PAD))


def _mac(key: bytes, purpose: str, body: str) -> str:
    inner_start, outer_start = _keyed(bytes(key))
    inner = inner_start.copy()
    inner.update(f"{purpose}:{body}".encode())
    outer = outer_start.copy()
    outer.update(inner.digest())
    encoded = binascii.b2a_base64(outer.digest()[:_MAC_BYTES], newline=False)
    return encoded.translate(_URL_SAFE).decode("ascii").rstrip("=")


def make(key: bytes, purpose: str, *values: int, expires_at: int | None = None) -> str:
    body = "-".join(map(_b36, values))
    if expires_at is not None:
        body = f"{body}-x{_b36(expires_at)}" if values else "x" + _b36(expires_at)
    return f"{body}.{_mac(key, purpose, body)}"


def _signer(keys: Sequence[bytes], purpose: str, body: str, mac: str) -> int:
    """Index of the key that made ``mac``; every key is tried, so timing tells nothing."""
    found = -1
    for index, key in enumerate(keys):
        if hmac.compare_digest(mac, _mac(key, purpose, body)) and found < 0:
            found = index
    if found < 0:
        raise InvalidToken("invalid token")
    return found


def check(
    keys: bytes | Sequence[bytes],
    purpose: str,
    token: str,
    *,
    count: int,
    expires: bool = False,
    now: float | None = None,
) -> TokenData:
    """The token's ``count`` values (and expiry when ``expires``), or InvalidToken when it is
    forged, altered, malformed, of another shape or expired.

    ``keys`` is the current link key first, then retired ones kept for verification.
    """
    # Tokens arrive from URLs and mail subjects: anything that is not the short ASCII we make
    # is refused here, as compare_digest raises TypeError on non-ASCII text.
    if not isinstance(token, str) or len(token) > _MAX_LENGTH or not token.isascii():
        raise InvalidToken("malformed token")
    body, dot, mac = token.partition(".")
    if not dot or not body:
        raise InvalidToken("malformed token")
    index = _signer([keys] if isinstance(keys, bytes) else keys, purpose, body, mac)
    parts = body.split("-")
    if len(parts) != count + int(expires):
        raise InvalidToken("malformed token")
    expires_at: int | None = None
    if expires:
        last = parts.pop()
        if not last.startswith("x"):
            raise InvalidToken("malformed token")
        expires_at = _read_b36(last[1:])
    values = tuple(_read_b36(part) for part in parts)
    if expires_at is not None and (time.time() if now is None else now) > expires_at:
        raise InvalidToken("expired token")
    return TokenData(values, expires_at, index)
