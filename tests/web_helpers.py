"""Helpers for the web service tests: the real waitress server in a thread, a tiny HTTP
client over http.client that keeps cookies, and waiting for mail at the SMTP sink."""

from __future__ import annotations

import contextlib
import http.client
import re
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from conftest import SmtpSink, free_port
from waitress import wasyncore

from newsletter.config import Settings
from newsletter.web import create_app, make_server


def web_settings(settings: Settings, sink: SmtpSink | None = None, **changes) -> Settings:
    """The test settings with a loopback base URL on a free port and SMTP at the sink."""
    port = free_port()
    values = {"base_url": f"http://127.0.0.1:{port}", **changes}
    if sink is not None:
        values.update(smtp_host=sink.host, smtp_port=sink.port, smtp_security="none")
    return settings.with_overrides(**values)


class LiveServer:
    """``newsletter serve`` as the CLI runs it (waitress + the app), on a loopback port."""

    def __init__(
        self, settings: Settings, *, trusted_proxy: str | None = None, access_log=None
    ) -> None:
        self.settings = settings
        port = urlsplit(settings.base_url).port
        self.app = create_app(settings)
        self.server = make_server(
            settings,
            host="127.0.0.1",
            port=port or 0,
            threads=4,
            trusted_proxy=trusted_proxy,
            app=self.app,
            access_log=access_log,
            asyncore_loop_timeout=0.05,  # so close() ends the loop quickly
        )
        self.port = self.server.effective_port
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_mail_queue(self) -> None:
        self.app.extensions["newsletter"].outbox.join()

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # Sockets may only be closed by the loop's own thread: the trigger runs the thunk
        # there; with the socket map empty the loop ends, then the workers stop.
        # OSError: the loop already ended and closed its trigger (e.g. after an error in it).
        with contextlib.suppress(OSError):
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        self.thread.join(timeout=5)
        self.server.task_dispatcher.shutdown()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Client:
    """A cookie-keeping HTTP client; never follows redirects (tests look at them)."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        target: str,
        *,
        form: dict | list | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        send_cookies: bool = True,
    ) -> Reply:
        parts = urlsplit(target if "://" in target else self.base + target)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        sent = dict(headers or {})
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if send_cookies and self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            conn.close()
        for raw in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value
        return Reply(response.status, response.headers, text)

    def get(self, target: str, **kwargs) -> Reply:
        return self.request("GET", target, **kwargs)

    def post(self, target: str, **kwargs) -> Reply:
        return self.request("POST", target, **kwargs)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def wait_for_mail(sink: SmtpSink, address: str, count: int = 1, timeout: float = 15) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sink.to(address)
        if len(got) >= count:
            return got
        time.sleep(0.05)
    raise AssertionError(f"expected {count} message(s) to {address}, got {len(sink.to(address))}")


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the message has no text/plain part"
    return part.get_content()


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "the message has no text/html part"
    return part.get_content()


def confirm_link(message: EmailMessage) -> str:
    found = re.search(r"https?://\S+/confirm/[0-9a-z-]+\.[A-Za-z0-9_-]+", text_part(message))
    assert found, "no confirmation link in the text part"
    return found.group(0)


def list_unsubscribe_url(message: EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    found = re.search(r"<(https?://[^>]+)>", header)
    assert found, f"no http(s) URL in List-Unsubscribe: {header!r}"
    return found.group(1)
