"""Links that work for every subscriber, topic and purpose; link keys that can change;
files only their owner can read (issue 11 items 1 and 6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import mailbox
import os
import stat
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from web_helpers import Client, LiveServer, web_settings

from newsletter import links, tokens
from newsletter.audience import subscribers
from newsletter.config import Settings
from newsletter.content import topics
from newsletter.errors import InvalidToken
from newsletter.store.db import link_keys, open_db, token_key

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Ids whose base-36 text starts with "x" (33, 1188-1223, 42768-44063, ...): uniform int64
# values almost never are, and they are the ones that broke.
X_IDS = st.integers(0, 11).flatmap(lambda k: st.integers(33 * 36**k, 34 * 36**k - 1))
IDS = st.one_of(INT64, X_IDS, st.integers(0, 100_000))
KEY = b"k" * 32
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


# --- every id, every purpose ---------------------------------------------------------------


@hsettings(max_examples=400, deadline=None)
@given(subscriber_id=IDS, topic_id=IDS, expires_at=st.integers(0, 2**63 - 1))
def test_every_token_verifies_for_every_id_and_purpose(subscriber_id, topic_id, expires_at):
    assert links.read_unsubscribe(KEY, links.unsubscribe_token(KEY, subscriber_id, topic_id)) == (
        subscriber_id,
        topic_id,
    )
    assert links.read_preferences(KEY, links.preferences_token(KEY, subscriber_id)) == (
        subscriber_id
    )
    confirm = tokens.make(KEY, links.CONFIRM, subscriber_id, expires_at=expires_at)
    data = links.read_confirm(KEY, confirm, now=0)
    assert (data.values, data.expires_at) == ((subscriber_id,), expires_at)
    # The token of one purpose is refused for the others, whatever the ids.
    with pytest.raises(InvalidToken):
        links.read_preferences(KEY, links.unsubscribe_token(KEY, subscriber_id, topic_id))
    with pytest.raises(InvalidToken):
        links.read_unsubscribe(KEY, confirm)


@given(subscriber_id=IDS, topic_id=IDS)
def test_the_mailto_link_carries_a_token_the_mailbox_reader_finds(subscriber_id, topic_id):
    from newsletter.config import Settings
    from newsletter.delivery.mailbox_unsubscribe import find_token

    mailto = links.unsubscribe_mailto(Settings(), KEY, subscriber_id, topic_id)
    msg = EmailMessage()
    msg["Subject"] = mailto.split("subject=", 1)[1].replace("%20", " ")
    token, why = find_token([KEY], msg)
    assert why is None and links.read_unsubscribe(KEY, token) == (subscriber_id, topic_id)


@hsettings(max_examples=300)
@given(st.text(max_size=60))
def test_any_text_is_a_token_or_an_invalid_token(text):
    for read in (links.read_preferences, links.read_unsubscribe, links.read_confirm):
        with pytest.raises(InvalidToken):
            read(KEY, text)


# Tokens exactly as the previous version wrote them (its own make(), same key): the format
# is unchanged, so everything ever mailed reads the same; the x-ids that were refused before
# now read right.
TEST_KEY = hashlib.sha256(b"newsletter-token:test-secret-not-for-production").digest()
MAILED_UNSUBSCRIBE = {
    "1-1.iG6_6haKTvrAqzex": (1, 1),
    "16-7.O-ciheYmXRSiy53E": (42, 7),
    "x-1.dvuurVL2UYMkGv4B": (33, 1),
    "x0-xz.KIfS3gD0l3Ph6pnT": (1188, 1223),
}
MAILED_PREFERENCES = {"5.X1EGXp1UcH-eq9bC": 5, "x00.JkdZcs_YWSz4qB6s": 42768}
MAILED_CONFIRM = {"3-x1vuhmo0.I1Pu0fUIB5tYy1D0": 3, "x-x1vuhmo0.6cYiap_xFcS_x0z_": 33}


def test_tokens_mailed_in_the_old_format_still_verify() -> None:
    for token, ids in MAILED_UNSUBSCRIBE.items():
        assert links.read_unsubscribe(TEST_KEY, token) == ids
        assert links.unsubscribe_token(TEST_KEY, *ids) == token
    for token, sid in MAILED_PREFERENCES.items():
        assert links.read_preferences(TEST_KEY, token) == sid
        assert links.preferences_token(TEST_KEY, sid) == token
    for token, sid in MAILED_CONFIRM.items():
        data = links.read_confirm(TEST_KEY, token)
        assert data.values == (sid,) and data.expires_at == 4_102_444_800
        assert tokens.make(TEST_KEY, links.CONFIRM, sid, expires_at=4_102_444_800) == token


# --- the links of one recipient at once (issue 17) ------------------------------------------

SETTINGS_VARIANTS = st.builds(
    lambda base, slash, mailbox: Settings(
        base_url=base + slash,
        from_addr="Säätiö <uutiskirje@example.fi>",
        unsubscribe_mailto=mailbox,
    ),
    st.sampled_from(
        ["https://uutiskirje.example.fi", "https://example.fi/uutiset", "http://127.0.0.1:8080"]
    ),
    st.sampled_from(["", "/", "//"]),
    st.sampled_from(["", "peru@example.fi"]),
)


@hsettings(max_examples=300, deadline=None)
@given(
    settings=SETTINGS_VARIANTS,
    key=st.binary(min_size=1, max_size=130),
    subscriber_id=IDS,
    topic_id=IDS,
)
def test_recipient_links_are_the_three_links_one_by_one(settings, key, subscriber_id, topic_id):
    together = links.recipient_links(settings, key, subscriber_id, topic_id)
    assert together == (
        links.unsubscribe_url(settings, key, subscriber_id, topic_id),
        links.preferences_url(settings, key, subscriber_id),
        links.unsubscribe_mailto(settings, key, subscriber_id, topic_id),
    )
    unsubscribe, preferences, mailto = together
    base = settings.base_url.rstrip("/")
    token = links.unsubscribe_token(key, subscriber_id, topic_id)
    assert unsubscribe == f"{base}/u/{token}"
    assert preferences == f"{base}/p/{links.preferences_token(key, subscriber_id)}"
    mailbox = settings.unsubscribe_mailto or "unsubscribe@example.fi"
    assert mailto == f"mailto:{mailbox}?subject={quote('unsubscribe ' + token)}"
    assert links.read_unsubscribe(key, unsubscribe.rpartition("/")[2]) == (subscriber_id, topic_id)
    assert links.read_unsubscribe(key, mailto.rpartition("%20")[2]) == (subscriber_id, topic_id)


def test_links_follow_each_settings_object_even_when_many_come_and_go() -> None:
    """The per-Settings prefixes are cached by object: a new Settings (another base URL or
    mailbox) gets its own links, also after the cache was emptied for room."""
    made = []
    for number in range(100):
        settings = Settings(
            base_url=f"https://n{number}.example.fi/", unsubscribe_mailto=f"u{number}@x.fi"
        )
        made.append(settings)
        unsubscribe, _, mailto = links.recipient_links(settings, KEY, 1, 2)
        assert unsubscribe.startswith(f"https://n{number}.example.fi/u/")
        assert mailto.startswith(f"mailto:u{number}@x.fi?subject=")
    for number, settings in enumerate(made):
        assert links.preferences_url(settings, KEY, 1).startswith(
            f"https://n{number}.example.fi/p/"
        )
        changed = settings.with_overrides(base_url="https://muu.example.fi")
        assert links.unsubscribe_url(changed, KEY, 1, 2).startswith("https://muu.example.fi/u/")


def _plain_b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number < 0:
        return "_" + _plain_b36(-number)
    text = digits[number % 36]
    while number >= 36:
        number //= 36
        text = digits[number % 36] + text
    return text


@hsettings(max_examples=500)
@given(number=st.one_of(IDS, st.integers(0, 36**3).map(lambda n: n * 36**2)))
def test_ids_are_written_in_base_36_as_always(number: int) -> None:
    assert tokens._b36(number) == _plain_b36(number)


@hsettings(max_examples=300)
@given(
    key=st.one_of(st.binary(max_size=200), st.just(b"k" * 64), st.just(b"k" * 65)),
    purpose=st.sampled_from([links.UNSUBSCRIBE, links.PREFERENCES, links.CONFIRM, links.BOUNCE]),
    body=st.text(max_size=80),
)
def test_the_mac_is_hmac_sha256_of_the_purpose_and_body(key, purpose, body):
    """The MAC, computed from precomputed key pads, is the RFC 2104 HMAC the tokens always
    carried: keys shorter than, as long as and longer than SHA-256's 64-octet block."""
    digest = hmac.new(key, f"{purpose}:{body}".encode(), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")
    assert tokens._mac(key, purpose, body) == expected
    assert tokens._mac(bytearray(key), purpose, body) == expected


def _with_id(db, subscriber_id: int, email: str, topic_id: int) -> int:
    """A confirmed subscriber whose id is ``subscriber_id`` (new ids follow erased ones)."""
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('erased_max_subscriber_id', ?)",
        [str(subscriber_id - 1)],
    )
    made = subscribers.add(db, email, topic_ids=[topic_id], status="confirmed").subscriber_id
    assert made == subscriber_id
    return made


def _topic_with_id(db, topic_id: int) -> int:
    db.execute(
        "INSERT INTO topics (id, slug, name, created) VALUES (?, ?, ?, '2025-01-01T00:00:00Z')",
        [topic_id, f"aihe-{topic_id}", f"Aihe {topic_id}"],
    )
    return topic_id


def test_x_ids_unsubscribe_through_the_web_and_the_mailbox(settings, db, smtp_sink, cli, workdir):
    """Subscriber 33 and topic 1188 (base 36 "x", "x0"): every link of theirs works."""
    topic = _topic_with_id(db, 1188)
    other = _topic_with_id(db, 1223)
    sid = _with_id(db, 33, "kolmekymmenta@example.fi", topic)
    subscribers.set_subscription(db, sid, other, "confirmed", "cli")
    key = token_key(db, settings.secret)
    config = web_settings(settings, smtp_sink)
    with LiveServer(config) as server:
        client = Client(server.url)
        url = links.unsubscribe_url(config, key, sid, topic)
        reply = client.post(url, body=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
        assert reply.status == 200
        prefs = client.get(links.preferences_url(config, key, sid))
        assert prefs.status == 200 and "Aihe 1223" in prefs.body
        assert client.get(links.preferences_url(config, key, sid) + "/erase").status == 200
    assert subscribers.subscription_statuses(db, sid) == {topic: "unsubscribed", other: "confirmed"}
    # The mailto route: a request mailed to the List-Unsubscribe address.
    box = mailbox.Maildir(workdir / "unsub", create=True)
    msg = EmailMessage()
    msg["From"] = "kolmekymmenta@example.fi"
    msg["Subject"] = "unsubscribe " + links.unsubscribe_token(key, sid, other)
    box.add(msg)
    out = cli.ok("unsubscribes", "import", str(workdir / "unsub"))
    assert "1 applied" in out.stdout and "0 invalid" in out.stdout
    assert subscribers.subscription_statuses(db, sid) == {
        topic: "unsubscribed",
        other: "unsubscribed",
    }


# --- link keys that change -----------------------------------------------------------------


def test_links_mailed_before_the_secret_changed_keep_working(settings, db, smtp_sink, cli):
    topic = topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus").id
    sid = subscribers.add(db, "liisa@example.fi", topic_ids=[topic]).subscriber_id
    # Mailed while NEWSLETTER_SECRET was unset: signed with the key kept in the database.
    unset = settings.with_overrides(secret="")
    first_key = token_key(db, "")
    first_url = links.unsubscribe_url(unset, first_key, sid, topic)
    # Then staff set a secret, as the README advises: the tool says so, once.
    with_secret = {"NEWSLETTER_SECRET": "uusi-salaisuus-2026"}
    told = cli.ok("topics", "list", env=with_secret)
    assert "the link key changed" in told.stderr and "1 earlier key" in told.stderr
    assert "the link key changed" not in cli.ok("topics", "list", env=with_secret).stderr
    assert "uusi-salaisuus" not in told.stderr + told.stdout
    # ... and changed it once more.
    again = cli.ok("topics", "list", env={"NEWSLETTER_SECRET": "kolmas-avain"})
    assert "2 earlier key(s)" in again.stderr
    new = settings.with_overrides(secret="kolmas-avain")
    keys = link_keys(db, new.secret)
    assert keys[0] == token_key(db, new.secret) != first_key and first_key in keys
    config = web_settings(new, smtp_sink)
    with LiveServer(config) as server:
        client = Client(server.url)
        old = first_url.replace(unset.base_url, config.base_url)
        assert client.get(old).status == 200
        assert client.post(old, body=b"List-Unsubscribe=One-Click", headers=ONE_CLICK).status == 200
        # New links are signed with the new key only; a forged key is still refused.
        assert links.unsubscribe_url(config, keys[0], sid, topic) != old
        forged = links.unsubscribe_url(config, b"f" * 32, sid, topic)
        assert client.get(forged).status == 404
    assert subscribers.subscription_statuses(db, sid) == {topic: "unsubscribed"}


# --- private files -------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def test_init_creates_config_and_database_private_whatever_the_umask(
    tmp_path: Path, open_umask, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from newsletter.cli import app

    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(app, ["init"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert _mode(tmp_path / "newsletter.toml") == 0o600
    db = open_db(tmp_path / "subscribers.db")
    db.execute("CREATE TABLE probe (x)")  # makes SQLite write the -wal and -shm
    for name in ("subscribers.db", "subscribers.db-wal", "subscribers.db-shm"):
        assert _mode(tmp_path / name) == 0o600, name
    db.close()


def test_a_database_left_readable_by_an_older_version_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "vanha.db"
    open_db(path).close()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            os.chmod(f"{path}{suffix}", 0o644)
    open_db(path).close()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            assert _mode(Path(f"{path}{suffix}")) == 0o600


@pytest.mark.parametrize(
    ("content", "mode", "warned"),
    [
        ('[smtp]\npassword = "salasana"\n', 0o644, True),
        ('[smtp]\npassword = "salasana"\n', 0o640, True),
        ('secret = "avain"\n', 0o604, True),
        ('[smtp]\npassword = "salasana"\n', 0o600, False),
        ('[smtp]\nhost = "localhost"\n', 0o644, False),
    ],
)
def test_a_readable_config_holding_a_password_is_warned_about(
    tmp_path: Path, content: str, mode: int, warned: bool
) -> None:
    from typer.testing import CliRunner

    from newsletter.cli import app

    config = tmp_path / "newsletter.toml"
    config.write_text(f'database = "s.db"\n{content}', encoding="utf-8")
    config.chmod(mode)
    result = CliRunner().invoke(app, ["--config", str(config), "topics", "list"], env={})
    assert result.exit_code == 0, result.stderr
    assert ("chmod 600" in result.stderr) is warned
    assert "salasana" not in result.stderr and 'avain"' not in result.stderr


def test_an_upgraded_database_keeps_the_secret_its_old_mails_were_signed_with(
    settings, db, cli
) -> None:
    """Mails went out before keys were recorded, signed with the NEWSLETTER_SECRET of then;
    the first command after the upgrade keeps that key, so a later change loses nothing."""
    topic = topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus").id
    sid = subscribers.add(db, "liisa@example.fi", topic_ids=[topic]).subscriber_id
    old_env = {"NEWSLETTER_SECRET": "vanha-salaisuus"}
    old_key = hashlib.sha256(b"newsletter-token:vanha-salaisuus").digest()
    mailed = links.unsubscribe_token(old_key, sid, topic)  # as the earlier version signed it
    edition = db.execute(
        "INSERT INTO editions (subject, lang, template, html, text, status, created, updated)"
        " VALUES ('s', 'fi', 'default', '', '', 'sent', '2025-01-01', '2025-01-01')"
    ).lastrowid
    db.execute(
        "INSERT INTO deliveries (edition_id, subscriber_id, topic_id, status, created, updated)"
        " VALUES (?, ?, ?, 'sent', '2025-01-01', '2025-01-01')",
        [edition, sid, topic],
    )
    assert db.execute("SELECT COUNT(*) FROM link_keys").fetchone()[0] == 0
    quiet = cli.ok("topics", "list", env=old_env)  # any command, after the upgrade
    assert "link key" not in quiet.stderr
    told = cli.ok("topics", "list", env={"NEWSLETTER_SECRET": "uusi-salaisuus"})
    assert "the link key changed" in told.stderr
    assert links.read_unsubscribe(link_keys(db, "uusi-salaisuus"), mailed) == (sid, topic)
