"""The WSGI application of ``newsletter serve``: Flask, served by waitress.

Waitress runs requests on several threads; each thread keeps its own SQLite connection
(WAL lets readers and the one writer work side by side).
"""

from __future__ import annotations

import threading
import traceback
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from sqlite_utils import Database
from werkzeug.exceptions import HTTPException

from newsletter.audience import confirmations, subscribers
from newsletter.config import Settings
from newsletter.store.db import link_keys, open_db
from newsletter.web import archive
from newsletter.web.context import Web, message, web
from newsletter.web.csrf import Csrf, origin_of
from newsletter.web.hooks import hooks
from newsletter.web.outbox import Outbox
from newsletter.web.views import bp

MAX_BODY = 16 * 1024  # the largest form here is a few hundred bytes


def _send_confirmation(db: Database, settings: Settings, subscriber_id: int, lang: str) -> bool:
    # The outbox thread keeps this connection for good: a transaction left open by a failed
    # mail would hold SQLite's write lock and stall every sign-up and unsubscribe.
    try:
        return confirmations.request_confirmation(db, settings, subscriber_id, lang=lang)
    finally:
        if db.conn.in_transaction:
            db.conn.rollback()


def create_app(settings: Settings) -> Flask:
    """The application for ``settings``; migrates the database once up front."""
    app = Flask(__name__)
    app.url_map.merge_slashes = False  # '/p//erase' is a broken link, not a redirect
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY,
        MAX_FORM_MEMORY_SIZE=MAX_BODY,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    first = open_db(settings.db)
    subscribers.recover_imports(first)  # a dead import's half is nobody's consent
    keys = link_keys(first, settings.secret)
    key = keys[0]
    first.close()
    https = settings.base_url.startswith("https://")
    allowed = {o for o in (origin_of(settings.base_url), origin_of(settings.org_website)) if o}
    app.extensions["newsletter"] = Web(
        settings=settings,
        key=key,
        keys=tuple(keys),
        csrf=Csrf(key, secure=https, allowed_origins=allowed),
        outbox=Outbox(settings, _send_confirmation),
        local=threading.local(),
    )
    _install_hooks(app, settings, https)

    app.register_blueprint(bp)
    app.register_blueprint(hooks)
    app.register_blueprint(archive.bp)
    return app


def _install_hooks(app: Flask, settings: Settings, https: bool) -> None:
    logo = origin_of(settings.logo_url)
    policy = "; ".join(
        [
            "default-src 'self'",
            f"img-src 'self'{' ' + logo if logo else ''}",
            "style-src 'self'",
            "script-src 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        # A view may loosen it for its own response (the web version of an edition).
        headers["Content-Security-Policy"] = g.get("content_security_policy") or policy
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if https:
            headers["Strict-Transport-Security"] = "max-age=31536000"
        if g.get("public_page"):
            # The archive and web versions are the same for everyone.
            headers["Cache-Control"] = "public, max-age=300"
        elif request.endpoint != "static":
            # Pages behind signed links are personal: no caches, no search engines.
            headers["Cache-Control"] = "no-store"
            headers["X-Robots-Tag"] = "noindex, nofollow"
        nonce = g.get("new_csrf_nonce")
        if nonce and not g.get("public_page"):  # a shared cached page sets no cookie
            response.set_cookie(
                web().csrf.cookie_name,
                nonce,
                path="/",
                secure=https,
                httponly=True,
                samesite="Strict",
            )
        return response

    @app.teardown_request
    def end_transaction(_exc: BaseException | None) -> None:
        db = getattr(web().local, "db", None)
        if db is not None and db.conn.in_transaction:
            db.conn.rollback()

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        code = exc.code or 500
        keys = {
            400: ("form_expired_title", "form_expired"),
            403: ("form_expired_title", "form_expired"),
            404: ("not_found_title", "not_found"),
            405: ("not_found_title", "not_found"),
            413: ("too_large_title", "too_large"),
            429: ("rate_limited_title", "rate_limited"),
        }.get(code, ("server_error_title", "server_error"))
        return message(*keys, status=code)

    @app.errorhandler(Exception)
    def server_error(exc: Exception) -> tuple[str, int]:
        # Name and place only: messages may quote an address, and logs must not keep those.
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        place = f" at {where.filename}:{where.lineno}" if where else ""
        app.logger.error("request failed: %s%s", type(exc).__name__, place)
        return message("server_error_title", "server_error", status=500)


def base_path(settings: Settings) -> str:
    """The path part of the public base URL (``/uutiskirje`` behind a proxy), or ''."""
    return urlsplit(settings.base_url).path.rstrip("/")
