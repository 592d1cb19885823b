"""Settings: defaults, then ``newsletter.toml``, then ``NEWSLETTER_*`` environment variables.

Secrets (SMTP password, token key) are read from the file or the environment only, never
from the command line, and are hidden from ``repr`` so they cannot leak into logs.
"""

from __future__ import annotations

import errno
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

from newsletter.errors import ConfigError

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

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_security: str = "none"
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_timeout: float = 30.0
    smtp_ca_file: Path | None = None  # extra CA for a private relay

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

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def sender_address(self) -> str:
        return _address_in(self.from_addr)

    @property
    def sender_domain(self) -> str:
        return self.sender_address.rpartition("@")[2].lower() or "localhost"

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
    _Key("smtp_host", "smtp.host", "NEWSLETTER_SMTP_HOST"),
    _Key("smtp_port", "smtp.port", "NEWSLETTER_SMTP_PORT"),
    _Key("smtp_security", "smtp.security", "NEWSLETTER_SMTP_SECURITY"),
    _Key("smtp_username", "smtp.username", "NEWSLETTER_SMTP_USERNAME"),
    _Key("smtp_password", "smtp.password", "NEWSLETTER_SMTP_PASSWORD"),
    _Key("smtp_timeout", "smtp.timeout", "NEWSLETTER_SMTP_TIMEOUT"),
    _Key("smtp_ca_file", "smtp.ca_file", "NEWSLETTER_SMTP_CA_FILE"),
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
)

_TYPES = {f.name: str(f.type) for f in fields(Settings)}
_SECRETS = frozenset(f.name for f in fields(Settings) if not f.repr)
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


def _coerce(attr: str, raw: Any, where: str, base_dir: Path) -> Any:
    kind = _TYPES[attr]
    try:
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


_KIND_NAMES = {
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
    "smtp_port": 1,
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
    if not settings.base_url.startswith(("http://", "https://")):
        raise bad("base_url", f"must start with https:// or http:// (got {settings.base_url!r})")
    for attr in ("from_addr", "reply_to", "unsubscribe_mailto", "org_name"):
        if any(ch in getattr(settings, attr) for ch in "\r\n"):
            raise bad(attr, "must not contain a line break")


CONFIG_TEMPLATE = """\
# newsletter.toml: settings for the `newsletter` command.
# Every value can be overridden by the environment variable named after it.
# Secrets (smtp.password, secret) belong in the environment, not in this file.

# SQLite database (NEWSLETTER_DB, or --db)
database = "subscribers.db"
# Time zone used for dates in editions and for --since/--until (NEWSLETTER_TIMEZONE)
timezone = "Europe/Helsinki"
# Language of editions and pages when none is known: fi, sv or en (NEWSLETTER_DEFAULT_LANG)
default_lang = "fi"
# Public address of `newsletter serve`; links in emails point here (NEWSLETTER_BASE_URL)
base_url = "https://uutiskirje.example.fi"
# Folder for your own templates, used by `build --template NAME` (NEWSLETTER_TEMPLATES_DIR)
# templates_dir = "my-templates"
# Feed categories that name the kind of article rather than a topic
# (NEWSLETTER_ARTICLE_TYPES, comma-separated)
article_types = ["Blogi", "Uutiset", "Blog", "News", "Nyheter"]
# Key for signed unsubscribe links: set NEWSLETTER_SECRET in the environment.
# Without it a key is generated once and kept in the database.
# secret = ""

[organisation]
name = "Esimerkkisäätiö"          # NEWSLETTER_ORG_NAME
address = "Esimerkkikatu 1, 00100 Helsinki"   # NEWSLETTER_ORG_ADDRESS
website = "https://www.example.fi"            # NEWSLETTER_ORG_WEBSITE
email = "info@example.fi"                     # NEWSLETTER_ORG_EMAIL
# logo = "https://www.example.fi/logo.png"    # NEWSLETTER_LOGO_URL

[mail]
from = "Esimerkkisäätiö <uutiskirje@example.fi>"    # NEWSLETTER_FROM
reply_to = "info@example.fi"                        # NEWSLETTER_REPLY_TO
# Address for mailto: unsubscribe requests (default: unsubscribe@ the From domain)
# unsubscribe_mailto = "unsubscribe@example.fi"     # NEWSLETTER_UNSUBSCRIBE_MAILTO

[smtp]
host = "localhost"       # NEWSLETTER_SMTP_HOST
port = 25                # NEWSLETTER_SMTP_PORT
security = "none"        # none | starttls | ssl (NEWSLETTER_SMTP_SECURITY)
username = ""            # NEWSLETTER_SMTP_USERNAME
# password = ""          # better in the environment: NEWSLETTER_SMTP_PASSWORD
timeout = 30             # seconds (NEWSLETTER_SMTP_TIMEOUT)
# ca_file = "relay-ca.pem"  # trust this CA too (NEWSLETTER_SMTP_CA_FILE)

[send]
rate = 10                # messages per second, across all connections (NEWSLETTER_RATE)
concurrency = 2          # parallel SMTP connections (NEWSLETTER_CONCURRENCY)
batch_size = 100         # recipients claimed at a time (NEWSLETTER_BATCH_SIZE)
max_errors = 20          # consecutive errors before a send pauses (NEWSLETTER_MAX_ERRORS)
max_retries = 5          # attempts for 4xx replies and dropped connections (NEWSLETTER_MAX_RETRIES)
retry_base = 30          # seconds before the first retry; doubles each time (NEWSLETTER_RETRY_BASE)
hard_bounce_limit = 1    # hard bounces before one is marked bounced (NEWSLETTER_HARD_BOUNCE_LIMIT)

[dkim]
# selector = "news"                 # NEWSLETTER_DKIM_SELECTOR
# domain = "example.fi"             # NEWSLETTER_DKIM_DOMAIN
# key_file = "dkim-private.pem"     # NEWSLETTER_DKIM_KEY_FILE

[web]
confirm_days = 7              # how long a sign-up link is valid (NEWSLETTER_CONFIRM_DAYS)
signup_limit_per_hour = 5     # sign-ups per address and per client IP (NEWSLETTER_SIGNUP_LIMIT)
"""


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
        # Mode "x" refuses an existing file in the same step that creates the new one.
        with path.open("x", encoding="utf-8") as out:
            out.write(CONFIG_TEMPLATE)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; not overwriting it") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None


def ensure_folder(folder: Path) -> None:
    """Create ``folder`` (for the settings file or the database) unless it exists."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        # mkdir says "File exists" when a file stands where a folder should be.
        raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder") from None
