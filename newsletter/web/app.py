"""The WSGI application of ``newsletter serve``: Flask, served by waitress.

Waitress runs requests on several threads; each thread keeps its own SQLite connection
(WAL lets readers and the one writer work side by side).
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, render_template, request
from sqlite_utils import Database
from werkzeug.exceptions import HTTPException

from newsletter import confirmations
from newsletter.config import LANGUAGES, Settings
from newsletter.db import open_db, token_key
from newsletter.web.csrf import Csrf, origin_of
from newsletter.web.outbox import Outbox
from newsletter.web.strings import LANGUAGE_NAMES, best_language, text

MAX_BODY = 16 * 1024  # the largest form here is a few hundred bytes


@dataclass
class Web:
    """What the views need, kept on ``app.extensions["newsletter"]``."""

    settings: Settings
    key: bytes  # the signed-link key
    csrf: Csrf
    outbox: Outbox
    local: threading.local

    def db(self) -> Database:
        if getattr(self.local, "db", None) is None:
            self.local.db = open_db(self.settings.db)
        return self.local.db


def web() -> Web:
    return current_app.extensions["newsletter"]


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
    key = token_key(first, settings.secret)
    first.close()
    https = settings.base_url.startswith("https://")
    allowed = {o for o in (origin_of(settings.base_url), origin_of(settings.org_website)) if o}
    app.extensions["newsletter"] = Web(
        settings=settings,
        key=key,
        csrf=Csrf(key, secure=https, allowed_origins=allowed),
        outbox=Outbox(settings, _send_confirmation),
        local=threading.local(),
    )
    _install_hooks(app, settings, https)

    from newsletter.web.views import bp

    app.register_blueprint(bp)
    return app


def request_lang(*preferred: str | None) -> str:
    """``preferred`` (e.g. the subscriber's language), else ``?lang=``, else the browser's
    Accept-Language, else the configured default."""
    browser = request.accept_languages.best_match(LANGUAGES)
    return best_language(
        [*preferred, request.args.get("lang"), browser], web().settings.default_lang
    )


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """Render a page in ``g.lang`` (set by the view) with the layout's shared values."""
    settings = web().settings
    lang = context.pop("lang", None) or g.get("lang") or request_lang()
    g.lang = lang
    html = render_template(
        template,
        lang=lang,
        t=lambda key, **values: text(key, lang, **values),
        org=_organisation(settings),
        languages=LANGUAGE_NAMES,
        csrf_token=csrf_token(),
        **context,
    )
    return html, status


def _organisation(settings: Settings) -> dict[str, str]:
    # Only what the layout shows: templates never see secrets.
    names = ("org_name", "org_address", "org_website", "logo_url")
    return {name: getattr(settings, name) for name in names}


def message(title_key: str, body_key: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return page("message.html", status, title_key=title_key, body_key=body_key, **context)


def csrf_token() -> str:
    """The form token for this browser, starting a cookie when it has none."""
    if "csrf_nonce" not in g:
        w = web()
        nonce = request.cookies.get(w.csrf.cookie_name)
        if not nonce or len(nonce) > 64:
            nonce = w.csrf.new_nonce()
            g.new_csrf_nonce = nonce
        g.csrf_nonce = nonce
    return web().csrf.token_for(g.csrf_nonce)


def csrf_ok() -> bool:
    """A form post from our own page in this browser."""
    w = web()
    if w.csrf.foreign_origin(request.headers.get("Origin")):
        return False
    nonce = request.cookies.get(w.csrf.cookie_name)
    return w.csrf.valid(nonce, request.form.get("csrf"))


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
        headers["Content-Security-Policy"] = policy
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if https:
            headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.endpoint != "static":
            # Pages behind signed links are personal: no caches, no search engines.
            headers["Cache-Control"] = "no-store"
            headers["X-Robots-Tag"] = "noindex, nofollow"
        nonce = g.get("new_csrf_nonce")
        if nonce:
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
