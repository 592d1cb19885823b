"""The SMTP connection against real aiosmtpd servers: plain, STARTTLS, TLS, AUTH, faults."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from conftest import SmtpSink, free_port, need_tool

from newsletter.config import Settings
from newsletter.mail import smtp

MESSAGE = b"From: a@example.fi\r\nTo: b@example.fi\r\nSubject: hei\r\n\r\nTerve\r\n"


def _settings(settings: Settings, port: int, **changes) -> Settings:
    return settings.with_overrides(
        smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=5.0, **changes
    )


class Faulty(SmtpSink):
    """A sink whose RCPT stage can refuse and whose DATA stage can hang up."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_rcpt: dict[str, str] = {}
        self.drop_next = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.drop_next:
            self.drop_next -= 1
            server.transport.close()
            return "421 gone"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def faulty() -> Iterator[Faulty]:
    sink = Faulty()
    sink.controller.start()
    yield sink
    sink.controller.stop()


def test_send_returns_the_servers_reply_and_reuses_the_connection(
    settings: Settings, faulty: Faulty
) -> None:
    with smtp.Connection(_settings(settings, faulty.port)) as conn:
        assert conn.send("a@example.fi", "b@example.fi", MESSAGE).startswith("250")
        first = conn._smtp
        conn.send("a@example.fi", "c@example.fi", MESSAGE)
        assert conn._smtp is first
    assert [m.rcpt_tos for m in faulty.messages] == [["b@example.fi"], ["c@example.fi"]]
    assert faulty.messages[0].message["Subject"] == "hei"


def test_replies_are_sorted_into_temporary_and_permanent(
    settings: Settings, faulty: Faulty
) -> None:
    faulty.refuse_rcpt["gone@example.fi"] = "550 5.1.1 no such user"
    faulty.reply = lambda env: (
        "451 4.3.0 try later"
        if "slow@example.fi" in env.rcpt_tos
        else ("554 5.7.1 content refused" if "spam@example.fi" in env.rcpt_tos else None)
    )
    with smtp.Connection(_settings(settings, faulty.port)) as conn:
        with pytest.raises(smtp.PermanentFailure) as bounced:
            conn.send("a@example.fi", "gone@example.fi", MESSAGE)
        assert bounced.value.hard_bounce and bounced.value.code == 550
        with pytest.raises(smtp.TemporaryFailure) as later:
            conn.send("a@example.fi", "slow@example.fi", MESSAGE)
        assert later.value.code == 451 and "try later" in later.value.reply
        with pytest.raises(smtp.PermanentFailure) as refused:
            conn.send("a@example.fi", "spam@example.fi", MESSAGE)
        assert refused.value.code == 554 and not refused.value.hard_bounce
        # The session is still usable after each refusal (RSET).
        assert conn.send("a@example.fi", "ok@example.fi", MESSAGE).startswith("250")
    assert [m.rcpt_tos for m in faulty.messages] == [["ok@example.fi"]]


def test_a_dropped_connection_is_temporary_and_the_next_send_reconnects(
    settings: Settings, faulty: Faulty
) -> None:
    faulty.drop_next = 1
    with smtp.Connection(_settings(settings, faulty.port)) as conn:
        with pytest.raises(smtp.TemporaryFailure):
            conn.send("a@example.fi", "b@example.fi", MESSAGE)
        assert conn.send("a@example.fi", "b@example.fi", MESSAGE).startswith("250")
    assert len(faulty.messages) == 1


def test_unreachable_server_is_connection_failed(settings: Settings) -> None:
    conn = smtp.Connection(_settings(settings, free_port()))
    with pytest.raises(smtp.ConnectionFailed, match=r"cannot reach SMTP server 127\.0\.0\.1"):
        conn.send("a@example.fi", "b@example.fi", MESSAGE)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    need_tool("openssl", "it makes the test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"uutiset" and auth_data.password == b"s3cret-pass"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_servers(certificate: tuple[Path, Path]) -> Iterator[dict[str, SmtpSink]]:
    context = _server_context(certificate)
    starttls, implicit = SmtpSink(), SmtpSink()
    starttls.controller = Controller(
        starttls,
        hostname="127.0.0.1",
        port=starttls.port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    implicit.controller = Controller(
        implicit,
        hostname="127.0.0.1",
        port=implicit.port,
        ssl_context=context,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    for sink in (starttls, implicit):
        sink.controller.start()
    yield {"starttls": starttls, "ssl": implicit}
    for sink in (starttls, implicit):
        sink.controller.stop()


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_with_certificate_check_and_auth(
    settings: Settings, tls_servers: dict[str, SmtpSink], certificate, security: str
) -> None:
    sink = tls_servers[security]
    good = _settings(
        settings,
        sink.port,
        smtp_security=security,
        smtp_ca_file=certificate[0],
        smtp_username="uutiset",
        smtp_password="s3cret-pass",
    )
    smtp.send_one(good, "a@example.fi", ["b@example.fi"], MESSAGE)
    assert [m.rcpt_tos for m in sink.messages] == [["b@example.fi"]]

    untrusted = good.with_overrides(smtp_ca_file=None)
    with pytest.raises(smtp.ConnectionFailed, match=r"TLS|certificate"):
        smtp.send_one(untrusted, "a@example.fi", ["b@example.fi"], MESSAGE)
    assert len(sink.messages) == 1


def test_plain_connection_to_a_starttls_only_server_is_refused(
    settings: Settings, tls_servers: dict[str, SmtpSink]
) -> None:
    plain = _settings(settings, tls_servers["starttls"].port)
    with pytest.raises(smtp.SmtpError):
        smtp.send_one(plain, "a@example.fi", ["b@example.fi"], MESSAGE)
    assert tls_servers["starttls"].messages == []


def test_a_refused_login_is_connection_failed_without_the_password(settings: Settings) -> None:
    sink = SmtpSink()
    sink.controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    sink.controller.start()
    try:  # plain text: aiosmtpd answers a failed AUTH over TLS only after a timeout
        wrong = _settings(
            settings, sink.port, smtp_username="uutiset", smtp_password="wrong-password"
        )
        with pytest.raises(smtp.ConnectionFailed, match=r"refused the login") as failed:
            smtp.send_one(wrong, "a@example.fi", ["b@example.fi"], MESSAGE)
        assert "wrong-password" not in str(failed.value)
        right = wrong.with_overrides(smtp_password="s3cret-pass")
        smtp.send_one(right, "a@example.fi", ["b@example.fi"], MESSAGE)
        assert len(sink.messages) == 1
    finally:
        sink.controller.stop()


@pytest.mark.parametrize(
    "address",
    [
        "b@example.fi\r\nRCPT TO:<x@evil.example>",
        "b@example.fi>,<c@evil.example",
        "b@example.fi> NOTIFY=SUCCESS",
        "b @example.fi",
        "no-at-sign",
    ],
)
def test_an_unsafe_envelope_address_is_refused_before_the_server_sees_it(
    settings: Settings, faulty: Faulty, address: str
) -> None:
    # smtplib alone would pick b@example.fi out of these and mail it.
    with smtp.Connection(_settings(settings, faulty.port)) as conn:
        with pytest.raises(smtp.PermanentFailure, match="not a single plain address"):
            conn.send("a@example.fi", address, MESSAGE)
        assert conn.send("a@example.fi", "b@example.fi", MESSAGE).startswith("250")
    assert [m.rcpt_tos for m in faulty.messages] == [["b@example.fi"]]


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_a_campaign_over_tls_sends_every_large_message_intact(
    db, settings: Settings, tls_servers: dict[str, SmtpSink], certificate, security: str
) -> None:
    # The send loop writes to non-blocking TLS sockets: a 300 KB message takes many
    # partial writes, and decrypted replies can wait inside the TLS buffer.
    from send_helpers import TEXT, add_people, make_edition, make_topic

    from newsletter.delivery import pipeline

    sink = tls_servers[security]
    topic = make_topic(db)
    emails = add_people(db, topic, 12)
    long_text = TEXT + "\n".join(f"{n}. rivi: " + "sisältöä " * 30 for n in range(1000))
    edition = make_edition(db, [topic], text=long_text)
    good = _settings(
        settings, sink.port, smtp_security=security, smtp_ca_file=certificate[0],
        smtp_username="uutiset", smtp_password="s3cret-pass",
    )  # fmt: skip
    report = pipeline.send(db, good, edition, concurrency=3, batch_size=4)

    assert (report.sent, report.pending) == (12, 0)
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == emails
    for received in sink.messages:
        parsed = received.message
        plain = parsed.get_body(("plain",)).get_content()
        assert "999. rivi: " in plain and parsed["To"].addresses[0].addr_spec in emails
