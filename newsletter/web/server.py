"""Running the app under waitress, and the base-URL rule for ``serve``."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from waitress import create_server
from waitress.server import BaseWSGIServer, MultiSocketServer

from newsletter.config import Settings
from newsletter.errors import ConfigError, NewsletterError
from newsletter.web.app import MAX_BODY, base_path, create_app


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
    sign-up data in clear text over the internet.
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


def make_server(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 4,
    trusted_proxy: str | None = None,
    app: Flask | None = None,
    **waitress_options: Any,
) -> BaseWSGIServer | MultiSocketServer:
    """A bound waitress server for the app; ``.run()`` serves, ``.close()`` stops.

    ``port=0`` picks a free port (``server.effective_port``). Behind a reverse proxy, pass
    its address as ``trusted_proxy`` so X-Forwarded-For gives the client's address (the
    per-IP sign-up limit needs it) and nobody else can set that header. ``app`` defaults
    to ``create_app(settings)``; ``waitress_options`` are further waitress adjustments
    (e.g. ``connection_limit``, ``channel_timeout``).
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
    try:
        return create_server(application, **options)
    except OSError as exc:
        raise NewsletterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
