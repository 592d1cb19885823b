"""CSRF protection for the forms, and the origin rules for the embeddable sign-up form.

Own pages use the signed double-submit cookie pattern: a random nonce in a SameSite=Strict,
HttpOnly cookie and, in each form, an HMAC of that nonce under a server key. A foreign site
can neither read the cookie nor compute the HMAC. The pages send ``Referrer-Policy:
no-referrer``, which makes browsers send ``Origin: null`` on their own form posts, so the
origin cannot be the check for them.

The sign-up form may also be embedded on the organisation's website. Browsers always send
``Origin`` on cross-site form posts, so a post whose Origin (or, lacking it, Referer) is the
service itself or ``organisation.website`` is accepted without the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL, lower-cased; None when it has none."""
    if not url or url == "null":
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port and port != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{suffix}"


class Csrf:
    def __init__(self, key: bytes, *, secure: bool, allowed_origins: set[str]) -> None:
        self._key = hmac.new(key, b"csrf", hashlib.sha256).digest()
        # __Host- cookies must be Secure, host-only and Path=/: no sibling host can set one.
        self.cookie_name = "__Host-nl_csrf" if secure else "nl_csrf"
        self.allowed_origins = allowed_origins

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(18)

    def token_for(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()[:40]

    def valid(self, nonce: str | None, submitted: str | None) -> bool:
        if not nonce or not submitted or len(nonce) > 64:
            return False
        return hmac.compare_digest(self.token_for(nonce), submitted)

    def foreign_origin(self, origin: str | None) -> bool:
        """True when a browser says the post came from a site that is not allowed."""
        found = origin_of(origin)
        return found is not None and found not in self.allowed_origins

    def allowed_embed(self, origin: str | None, referer: str | None) -> bool:
        """A post from the organisation's own website (the embedded sign-up form)."""
        source = origin_of(origin) if origin else origin_of(referer)
        return source is not None and source in self.allowed_origins
