"""Settings: defaults, then ``newsletter.toml``, then ``NEWSLETTER_*`` environment variables.

Secrets (SMTP password, token key) are read from the file or the environment only, never
from the command line, and are hidden from ``repr`` so they cannot leak into logs.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.config_template import CONFIG_TEMPLATE
from newsletter.errors import ConfigError
from newsletter.private_files import ensure_folder, open_private

LANGUAGES = ("fi", "sv", "en")
SMTP_SECURITY = ("none", "starttls", "ssl")
DEFAULT_CONFIG = "newsletter.toml"
DEFAULT_ARTICLE_TYPES = ("Blogi", "Uutiset", "Blog", "News", "Nyheter")


@dataclass(frozen=True)
class Settings:
    db: Path = Path("subscribers.db")
    timezone: str = "Europe/Helsinki"
    default_lang: str = "fi"
    base_url: str = "http://127.0.0.1:8080"
    templates_dir: Path | None = None
    article_types: tuple[str, ...] = DEFAULT_ARTICLE_TYPES
    secret: str = field(default="", repr=False)

    org_name: str = "Newsletter"
    org_address: str = ""
    org_website: str = ""
    org_email: str = ""
    logo_url: str = ""

    from_addr: str = "Newsletter <newsletter@localhost>"
    reply_to: str = ""
    unsubscribe_mailto: str = ""
    bounce_address: str = ""  # VERP envelope sender: bounces@x.fi -> bounces+<token>@x.fi

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_security: str = "none"
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_timeout: float = 30.0
    # A whole transaction (login, or one message from MAIL FROM to the end of DATA) and the
    # octets of replies the server may send in it: a drip-feeding server ends in an error.
    smtp_deadline: float = 120.0
    smtp_max_reply: int = 65536
    smtp_ca_file: Path | None = None  # extra CA for a private relay

    # Where `bounces import --imap` reads DSNs and complaints (IMAP over TLS only).
    imap_host: str = ""
    imap_port: int = 993
    imap_username: str = ""
    imap_password: str = field(default="", repr=False)
    imap_folder: str = "INBOX"
    imap_ca_file: Path | None = None
    # Webhooks on `newsletter serve`: SES through SNS (the SNS signing certificate you
    # downloaded, and the topic to accept), and Postmark (HTTP basic auth in the webhook URL).
    ses_certificate: Path | None = None
    ses_topic_arn: str = ""
    postmark_username: str = ""
    postmark_password: str = field(default="", repr=False)

    rate: float = 10.0
    concurrency: int = 2
    batch_size: int = 100
    max_errors: int = 20
    max_retries: int = 5
    # First back-off after a 4xx or a dropped connection; it doubles each attempt. Greylisting
    # servers want minutes, so the default spreads 5 attempts over about 7 minutes.
    retry_base: float = 30.0
    hard_bounce_limit: int = 1

    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_key_file: Path | None = None

    confirm_days: int = 7
    signup_limit_per_hour: int = 5
    confirm_interval_minutes: int = 60  # at most one confirmation mail per address this often

    # `newsletter digest`: the feeds of each topic, as (topic slug, (feed, ...)) pairs.
    digest_feeds: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Unattended, a digest refuses to send while the last edition bounced above 2% or drew
    # complaints above 0.1% (where mailbox providers start to junk a sender); True sends.
    digest_send_despite_bounces: bool = False
    # `newsletter serve`: where the access log goes: "-" is stderr, "" none, else a file.
    access_log: str = "-"

    # Article intake: a whole download's deadline and size cap, and whether topics first
    # seen in a feed are offered on the public sign-up page at once ("listed") or only
    # after `topics unhide` ("hidden").
    download_deadline: float = 60.0
    max_download_mb: float = 20.0
    new_topics: str = "hidden"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def sender_address(self) -> str:
        return _address_in(self.from_addr)

    @property
    def sender_domain(self) -> str:
        return self.sender_address.rpartition("@")[2].lower() or "localhost"

    def feeds_for(self, topic_slug: str) -> tuple[str, ...]:
        """The feeds `newsletter digest` imports for a topic (by its slug)."""
        for slug, feeds in self.digest_feeds:
            if slug == topic_slug:
                return feeds
        return ()

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


@lru_cache(maxsize=32)
def _address_in(value: str) -> str:
    # Asked for every message (envelope, mailto link): parseaddr costs ~25 µs each time.
    return parseaddr(value)[1]


@dataclass(frozen=True)
class _Key:
    attr: str
    toml: str  # dotted path in newsletter.toml
    env: str


# One row per setting: where it lives in the file and which variable overrides it.
KEYS: tuple[_Key, ...] = (
    _Key("db", "database", "NEWSLETTER_DB"),
    _Key("timezone", "timezone", "NEWSLETTER_TIMEZONE"),
    _Key("default_lang", "default_lang", "NEWSLETTER_DEFAULT_LANG"),
    _Key("base_url", "base_url", "NEWSLETTER_BASE_URL"),
    _Key("templates_dir", "templates_dir", "NEWSLETTER_TEMPLATES_DIR"),
    _Key("article_types", "article_types", "NEWSLETTER_ARTICLE_TYPES"),
    _Key("secret", "secret", "NEWSLETTER_SECRET"),
    _Key("org_name", "organisation.name", "NEWSLETTER_ORG_NAME"),
    _Key("org_address", "organisation.address", "NEWSLETTER_ORG_ADDRESS"),
    _Key("org_website", "organisation.website", "NEWSLETTER_ORG_WEBSITE"),
    _Key("org_email", "organisation.email", "NEWSLETTER_ORG_EMAIL"),
    _Key("logo_url", "organisation.logo", "NEWSLETTER_LOGO_URL"),
    _Key("from_addr", "mail.from", "NEWSLETTER_FROM"),
    _Key("reply_to", "mail.reply_to", "NEWSLETTER_REPLY_TO"),
    _Key("unsubscribe_mailto", "mail.unsubscribe_mailto", "NEWSLETTER_UNSUBSCRIBE_MAILTO"),
    _Key("bounce_address", "mail.bounce_address", "NEWSLETTER_BOUNCE_ADDRESS"),
    _Key("smtp_host", "smtp.host", "NEWSLETTER_SMTP_HOST"),
    _Key("smtp_port", "smtp.port", "NEWSLETTER_SMTP_PORT"),
    _Key("smtp_security", "smtp.security", "NEWSLETTER_SMTP_SECURITY"),
    _Key("smtp_username", "smtp.username", "NEWSLETTER_SMTP_USERNAME"),
    _Key("smtp_password", "smtp.password", "NEWSLETTER_SMTP_PASSWORD"),
    _Key("smtp_timeout", "smtp.timeout", "NEWSLETTER_SMTP_TIMEOUT"),
    _Key("smtp_ca_file", "smtp.ca_file", "NEWSLETTER_SMTP_CA_FILE"),
    _Key("smtp_deadline", "smtp.deadline", "NEWSLETTER_SMTP_DEADLINE"),
    _Key("smtp_max_reply", "smtp.max_reply", "NEWSLETTER_SMTP_MAX_REPLY"),
    _Key("imap_host", "bounces.imap_host", "NEWSLETTER_IMAP_HOST"),
    _Key("imap_port", "bounces.imap_port", "NEWSLETTER_IMAP_PORT"),
    _Key("imap_username", "bounces.imap_username", "NEWSLETTER_IMAP_USERNAME"),
    _Key("imap_password", "bounces.imap_password", "NEWSLETTER_IMAP_PASSWORD"),
    _Key("imap_folder", "bounces.imap_folder", "NEWSLETTER_IMAP_FOLDER"),
    _Key("imap_ca_file", "bounces.imap_ca_file", "NEWSLETTER_IMAP_CA_FILE"),
    _Key("ses_certificate", "bounces.ses_certificate", "NEWSLETTER_SES_CERTIFICATE"),
    _Key("ses_topic_arn", "bounces.ses_topic_arn", "NEWSLETTER_SES_TOPIC_ARN"),
    _Key("postmark_username", "bounces.postmark_username", "NEWSLETTER_POSTMARK_USERNAME"),
    _Key("postmark_password", "bounces.postmark_password", "NEWSLETTER_POSTMARK_PASSWORD"),
    _Key("rate", "send.rate", "NEWSLETTER_RATE"),
    _Key("concurrency", "send.concurrency", "NEWSLETTER_CONCURRENCY"),
    _Key("batch_size", "send.batch_size", "NEWSLETTER_BATCH_SIZE"),
    _Key("max_errors", "send.max_errors", "NEWSLETTER_MAX_ERRORS"),
    _Key("max_retries", "send.max_retries", "NEWSLETTER_MAX_RETRIES"),
    _Key("retry_base", "send.retry_base", "NEWSLETTER_RETRY_BASE"),
    _Key("hard_bounce_limit", "send.hard_bounce_limit", "NEWSLETTER_HARD_BOUNCE_LIMIT"),
    _Key("dkim_selector", "dkim.selector", "NEWSLETTER_DKIM_SELECTOR"),
    _Key("dkim_domain", "dkim.domain", "NEWSLETTER_DKIM_DOMAIN"),
    _Key("dkim_key_file", "dkim.key_file", "NEWSLETTER_DKIM_KEY_FILE"),
    _Key("confirm_days", "web.confirm_days", "NEWSLETTER_CONFIRM_DAYS"),
    _Key("signup_limit_per_hour", "web.signup_limit_per_hour", "NEWSLETTER_SIGNUP_LIMIT"),
    _Key("confirm_interval_minutes", "web.confirm_interval_minutes", "NEWSLETTER_CONFIRM_INTERVAL"),
    _Key("access_log", "web.access_log", "NEWSLETTER_ACCESS_LOG"),
    _Key("digest_feeds", "digest.feeds", "NEWSLETTER_DIGEST_FEEDS"),
    _Key(
        "digest_send_despite_bounces",
        "digest.send_despite_bounces",
        "NEWSLETTER_DIGEST_SEND_DESPITE_BOUNCES",
    ),
    _Key("download_deadline", "intake.download_deadline", "NEWSLETTER_DOWNLOAD_DEADLINE"),
    _Key("max_download_mb", "intake.max_download_mb", "NEWSLETTER_MAX_DOWNLOAD_MB"),
    _Key("new_topics", "intake.new_topics", "NEWSLETTER_NEW_TOPICS"),
)
NEW_TOPICS = ("hidden", "listed")

_TYPES = {f.name: str(f.type) for f in fields(Settings)}
_SECRETS = frozenset(f.name for f in fields(Settings) if not f.repr)
SECRETS = _SECRETS  # attributes shown only as set or unset
_KEY_OF = {key.attr: key for key in KEYS}
_TOML_KEYS = {key.toml for key in KEYS}
_TABLES = {key.toml.rpartition(".")[0] for key in KEYS} - {""}


def config_path(explicit: Path | None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if explicit is not None:
        return explicit
    return Path(env.get("NEWSLETTER_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings; a missing file means defaults. Relative paths resolve against the file."""
    env = os.environ if env is None else env
    path = config_path(path, env)
    data = _read_toml(path) if path.exists() else {}
    _reject_unknown(data, path)
    base_dir = path.parent if path.exists() else Path()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}  # where each value came from, for error messages
    for key in KEYS:
        raw = _lookup(data, key.toml)
        if raw is not None:
            sources[key.attr] = f"{path}: {key.toml}"
            values[key.attr] = _coerce(key.attr, raw, sources[key.attr], base_dir)
        # An empty variable counts as unset: shells and service files often export blanks.
        if env.get(key.env, "") != "":
            sources[key.attr] = key.env
            values[key.attr] = _coerce(key.attr, env[key.env], key.env, Path())
    settings = Settings(**values)
    _validate(settings, lambda attr: sources.get(attr) or _KEY_OF[attr].toml)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _reject_unknown(data: Mapping[str, Any], path: Path, prefix: str = "") -> None:
    """A misspelt key would otherwise be ignored in silence and its default used."""
    for name, value in data.items():
        dotted = prefix + name
        if dotted in _TABLES:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: {dotted} must be a section: [{dotted}]")
            _reject_unknown(value, path, dotted + ".")
        elif dotted not in _TOML_KEYS:
            raise ConfigError(f"{path}: unknown setting {dotted!r}")


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _feeds(raw: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``[digest.feeds]`` (topic = ["url", ...]) or NEWSLETTER_DIGEST_FEEDS
    ("topic=url url;other=url")."""
    if isinstance(raw, str):
        pairs: list[tuple[str, Any]] = []
        for part in filter(None, (p.strip() for p in raw.split(";"))):
            slug, sep, urls = part.partition("=")
            if not sep or not slug.strip():
                raise ConfigError(f"{where}: expected topic=feed-url ...; got {part!r}")
            pairs.append((slug.strip(), urls.replace(",", " ").split()))
    elif isinstance(raw, Mapping):
        pairs = list(raw.items())
    else:
        raise ConfigError(f"{where}: expected a table of topic = [feed URLs]")
    result = []
    for slug, urls in pairs:
        urls = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls, list) or not all(isinstance(u, str) and u for u in urls):
            raise ConfigError(f"{where}: {slug}: expected a list of feed URLs or paths")
        result.append((str(slug), tuple(urls)))
    return tuple(result)


# For newsletter.effective, which says where each value in force came from.
read_toml, lookup = _read_toml, _lookup


def _coerce(attr: str, raw: Any, where: str, base_dir: Path) -> Any:
    kind = _TYPES[attr]
    if attr == "digest_feeds":
        return _feeds(raw, where)
    try:
        if kind == "bool":
            return _boolean(raw)
        if "tuple" in kind:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            if not all(isinstance(item, str) for item in items):
                raise TypeError(raw)
            return tuple(item.strip() for item in items if item.strip())
        # bool is an int in Python, and a table or list would become its repr as text.
        if isinstance(raw, bool | Mapping | list):
            raise TypeError(raw)
        if "Path" in kind:
            candidate = Path(str(raw)).expanduser()
            return candidate if candidate.is_absolute() else base_dir / candidate
        if kind == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            number = float(raw)
            if not math.isfinite(number):
                raise ValueError(raw)
            return number
        return str(raw)
    except (TypeError, ValueError):
        # A secret's value is never shown, not even a wrong one: it may be the real one.
        shown = "a hidden value" if attr in _SECRETS else repr(raw)
        raise ConfigError(f"{where}: expected {_KIND_NAMES.get(kind, kind)}, got {shown}") from None


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _boolean(raw: Any) -> bool:
    """TOML's true/false; in the environment also yes/no, on/off, 1/0."""
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(raw)


_KIND_NAMES = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "Path": "a path",
    "Path | None": "a path",
    "tuple[str, ...]": "a list of names",
}

# Smallest allowed value of each numeric setting.
_MINIMUM = {
    "concurrency": 1,
    "batch_size": 1,
    "max_errors": 1,
    "max_retries": 1,
    "hard_bounce_limit": 1,
    "confirm_days": 1,
    "signup_limit_per_hour": 1,
    "confirm_interval_minutes": 0,
    "smtp_port": 1,
    "imap_port": 1,
    "smtp_max_reply": 1,
    "retry_base": 0,
}


def _validate(settings: Settings, where: Callable[[str], str]) -> None:
    def bad(attr: str, problem: str) -> ConfigError:
        return ConfigError(f"{where(attr)}: {problem}")

    if settings.default_lang not in LANGUAGES:
        raise bad("default_lang", f"must be one of {', '.join(LANGUAGES)}")
    if settings.smtp_security not in SMTP_SECURITY:
        raise bad("smtp_security", f"must be one of {', '.join(SMTP_SECURITY)}")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad("timezone", f"unknown time zone {settings.timezone!r}") from None
    if "@" not in settings.sender_address:
        raise bad("from_addr", f"not an address: {settings.from_addr!r}")
    for attr, minimum in _MINIMUM.items():
        if getattr(settings, attr) < minimum:
            raise bad(attr, f"must be at least {minimum}")
    if settings.smtp_port > 65535:
        raise bad("smtp_port", "must be at most 65535")
    if settings.rate <= 0:
        raise bad("rate", "must be above 0 (messages per second)")
    if settings.smtp_timeout <= 0:
        raise bad("smtp_timeout", "must be above 0 (seconds)")
    if settings.download_deadline <= 0:
        raise bad("download_deadline", "must be above 0 (seconds)")
    if settings.max_download_mb <= 0:
        raise bad("max_download_mb", "must be above 0 (megabytes)")
    if settings.new_topics not in NEW_TOPICS:
        raise bad("new_topics", f"must be one of {', '.join(NEW_TOPICS)}")
    if settings.smtp_deadline <= 0:
        raise bad("smtp_deadline", "must be above 0 (seconds)")
    if not settings.base_url.startswith(("http://", "https://")):
        raise bad("base_url", f"must start with https:// or http:// (got {settings.base_url!r})")
    if settings.bounce_address and not _plain_address(settings.bounce_address):
        raise bad("bounce_address", "must be a plain address like bounces@example.fi")
    for attr in ("from_addr", "reply_to", "unsubscribe_mailto", "org_name"):
        if any(ch in getattr(settings, attr) for ch in "\r\n"):
            raise bad(attr, "must not contain a line break")


def _plain_address(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(
        at and local and "." in domain and value.isascii() and "+" not in local
    ) and not any(ch in value for ch in ' <>,;"\r\n')


# The values `init` writes that must be replaced before anything is mailed for real:
# (attribute, config key, the example value).
EXAMPLE_VALUES = (
    ("org_name", "organisation.name", "Esimerkkisäätiö"),
    ("org_address", "organisation.address", "Esimerkkikatu 1, 00100 Helsinki"),
    ("org_website", "organisation.website", "https://www.example.fi"),
    ("org_email", "organisation.email", "info@example.fi"),
    ("from_addr", "mail.from", "Esimerkkisäätiö <uutiskirje@example.fi>"),
    ("reply_to", "mail.reply_to", "info@example.fi"),
    ("base_url", "base_url", "https://uutiskirje.example.fi"),
)


def example_values_in_use(settings: Settings) -> list[str]:
    """The config keys still holding the example values that `init` wrote."""
    return [key for attr, key, value in EXAMPLE_VALUES if getattr(settings, attr) == value]


def write_template(path: Path) -> None:
    """Write the commented settings file; an existing file is never replaced."""
    try:
        ensure_folder(path.parent)
        # Created exclusively ("x"): an existing file is refused in the same step. Private
        # from the start: staff may put the SMTP password into it.
        with open_private(path) as out:
            out.write(CONFIG_TEMPLATE)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; not overwriting it") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None


def exposed_secret_warning(path: Path) -> str | None:
    """A warning when the settings file holds a password or key yet others may read it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not mode & 0o044:
        return None
    try:
        data = _read_toml(path)
    except ConfigError:
        return None
    held = [
        key
        for key in ("secret", "smtp.password")
        if isinstance(_lookup(data, key), str) and _lookup(data, key)
    ]
    if not held:
        return None
    return (
        f"{path} holds {' and '.join(held)} but is readable by"
        f" {'others' if mode & 0o004 else 'its group'}: run chmod 600 {path}"
        " (or move the secrets into the environment)"
    )
