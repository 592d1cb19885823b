"""What every page needs: the service's shared state (settings, key, CSRF, outbox, one
database connection per thread) and the helpers that render a page in the reader's language."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, render_template, request
from sqlite_utils import Database

from newsletter.config import LANGUAGES, Settings
from newsletter.store.db import open_db
from newsletter.web.csrf import Csrf
from newsletter.web.outbox import Outbox
from newsletter.web.strings import LANGUAGE_NAMES, best_language, text


@dataclass
class Web:
    """What the views need, kept on ``app.extensions["newsletter"]``."""

    settings: Settings
    key: bytes  # the signed-link key
    keys: tuple[bytes, ...]  # it, then retired keys that still check links already mailed
    csrf: Csrf
    outbox: Outbox
    local: threading.local

    def db(self) -> Database:
        if getattr(self.local, "db", None) is None:
            self.local.db = open_db(self.settings.db)
        return self.local.db


def web() -> Web:
    return current_app.extensions["newsletter"]


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
