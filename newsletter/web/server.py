"""Running the app under waitress."""

from __future__ import annotations

from typing import Any, TextIO

from flask import Flask
from waitress import create_server
from waitress.server import BaseWSGIServer, MultiSocketServer

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.links import check_base_url, is_loopback
from newsletter.web import accesslog
from newsletter.web.app import MAX_BODY, base_path, create_app

# The base-URL rule lives in the core (``send`` needs it too); kept importable from here.
__all__ = ["check_base_url", "is_loopback", "make_server"]


def make_server(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 4,
    trusted_proxy: str | None = None,
    app: Flask | None = None,
    access_log: TextIO | None = None,
    **waitress_options: Any,
) -> BaseWSGIServer | MultiSocketServer:
    """A bound waitress server for the app; ``.run()`` serves, ``.close()`` stops.

    ``port=0`` picks a free port (``server.effective_port``). Behind a reverse proxy, pass
    its address as ``trusted_proxy`` so X-Forwarded-For gives the client's address (the
    per-IP sign-up limit needs it) and nobody else can set that header. ``app`` defaults
    to ``create_app(settings)``; ``waitress_options`` are further waitress adjustments
    (e.g. ``connection_limit``, ``channel_timeout``). ``access_log``, when given, gets one
    line per request with tokens, query strings and client addresses left out.
    """
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "threads": threads,
        "ident": "newsletter",
        "url_prefix": base_path(settings),
        "max_request_body_size": MAX_BODY * 4,
        "expose_tracebacks": False,
    }
    if trusted_proxy:
        options.update(
            trusted_proxy=trusted_proxy,
            trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"},
            clear_untrusted_proxy_headers=True,
        )
    options.update(waitress_options)
    application = app or create_app(settings)
    if access_log is not None:
        prefix = base_path(settings)
        accesslog.install(application, accesslog.AccessLog(access_log, settings.tz, prefix))
    try:
        return create_server(application, **options)
    except OSError as exc:
        raise NewsletterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
