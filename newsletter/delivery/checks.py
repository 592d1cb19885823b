"""The pre-send check: everything that should stop or worry a sender before an edition goes out.

``check_edition`` runs all of it for ``newsletter check``; ``before_send`` is the blocking
part, the one check every real send runs first (``newsletter send``, with ``--force``, and
``newsletter digest``, without), and raises ``SendRefused`` with the list (a draft built
before holes were sealed is refused before that). Test copies (``send --to``) only warn:
``test_copy_warnings``.

Each finding has a level: ``block`` stops a send and cannot be overridden (a message without
an unsubscribe link), ``force`` stops it unless the sender passes ``--force`` (example
values still in the settings, no postal address, clipped by Gmail), ``warn`` is shown only.
"""

from __future__ import annotations

import email
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from email import policy
from html import escape
from html.parser import HTMLParser
from urllib.parse import urlsplit

from sqlite_utils import Database

from newsletter import config, links
from newsletter.config import Settings
from newsletter.content import contract, editions
from newsletter.delivery import pipeline
from newsletter.errors import ConfigError, NewsletterError

GMAIL_CLIP = 102 * 1024  # bytes of HTML above which Gmail shows "[Message clipped]"
SIZE_WARNING = editions.SIZE_WARNING
SPAM_REQUIRED = 5.0  # SpamAssassin's default threshold
SPAM_WORRY = 2.5
LINK_TIMEOUT = 10.0
LINK_WORKERS = 4
SAMPLE_NAME = "Maija Meikäläinen"
SAMPLE_EMAIL = "maija.meikalainen@example.fi"

BLOCK, FORCE, WARN, INFO = "block", "force", "warn", "info"
_HTTP_URL = re.compile(r"^http://", re.I)


class SendRefused(NewsletterError):
    """The blocking checks found something; ``findings`` lists it."""

    def __init__(self, edition_id: int | None, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        listed = "; ".join(f.message for f in self.findings)
        overridable = all(f.level == FORCE for f in self.findings)
        hint = " (use --force to send anyway)" if overridable else ""
        what = "nothing is sent" if edition_id is None else f"edition {edition_id} is not sent"
        super().__init__(f"{what}: {listed}{hint}")


@dataclass(frozen=True)
class Finding:
    code: str
    level: str  # block | force | warn | info
    message: str
    details: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class CheckReport:
    edition: int
    html_bytes: int
    findings: list[Finding]
    spam_score: float | None = None

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.level in (BLOCK, FORCE)]

    def as_json(self) -> dict:
        return {
            "edition": self.edition,
            "html_bytes": self.html_bytes,
            "spam_score": self.spam_score,
            "ok": not self.blocking,
            "findings": [f.as_json() for f in self.findings],
        }


# --- what the HTML holds ---------------------------------------------------------------------


class _Scan(HTMLParser):
    """Images and links of the HTML, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values)
        elif tag == "a" and values.get("href"):
            self.links.append((values["href"] or "").strip())


def scan(html: str) -> _Scan:
    parser = _Scan()
    parser.feed(html)
    parser.close()
    return parser


def _is_loopback_url(url: str) -> bool:
    return links.is_loopback(urlsplit(url).hostname or "")


def content_findings(html: str, text: str) -> list[Finding]:
    """What the edition itself gets wrong: size, unsubscribe link, alt texts, plain http."""
    found: list[Finding] = []
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP:
        found.append(
            Finding(
                "html_size",
                FORCE,
                f"the HTML is {size / 1024:.0f} KB: Gmail clips messages above 102 KB, which"
                " hides the unsubscribe link; build it with fewer articles (--limit)",
            )
        )
    elif size > SIZE_WARNING:
        found.append(
            Finding("html_size", WARN, f"the HTML is {size / 1024:.0f} KB, close to Gmail's clip")
        )
    missing = [
        part
        for part, ok in (
            ("HTML", contract.has_unsubscribe_link(html)),
            ("text", contract.has_text_unsubscribe(text)),
        )
        if not ok
    ]
    if missing:
        found.append(
            Finding(
                "unsubscribe_missing",
                BLOCK,
                f"the {' and '.join(missing)} part has no unsubscribe link",
            )
        )
    parts = scan(html)
    no_alt = [str(img.get("src") or "?") for img in parts.images if not (img.get("alt") or "")]
    if no_alt:
        found.append(
            Finding(
                "image_alt", WARN, f"{len(no_alt)} images have no alt text", details=no_alt[:20]
            )
        )
    insecure = sorted({u for u in parts.links if _HTTP_URL.match(u) and not _is_loopback_url(u)})
    if insecure:
        found.append(
            Finding(
                "insecure_links",
                WARN,
                f"{len(insecure)} links are plain http, not https",
                details=insecure[:20],
            )
        )
    return found


# The example values that say who is writing (the organisation, its postal address, From).
IDENTITY_KEYS = ("organisation.name", "organisation.address", "mail.from")


def settings_findings(settings: Settings) -> list[Finding]:
    """What the settings get wrong: init's examples, no postal address, DKIM, base URL."""
    found: list[Finding] = []
    examples = config.example_values_in_use(settings)
    # Who the mail says it is from is never a placeholder: no --force sends as "Esimerkkisäätiö".
    identity = [key for key in examples if key in IDENTITY_KEYS]
    others = [key for key in examples if key not in IDENTITY_KEYS]
    if identity:
        found.append(
            Finding(
                "example_identity",
                BLOCK,
                "newsletter.toml still names init's example sender: " + ", ".join(identity),
                details=identity,
            )
        )
    if others:
        found.append(
            Finding(
                "example_values",
                FORCE,
                f"newsletter.toml still holds init's example values: {', '.join(others)}",
                details=others,
            )
        )
    if not settings.org_address.strip():
        found.append(
            Finding(
                "postal_address_missing",
                FORCE,
                "no postal address (organisation.address): the footer of a bulk mail needs one",
            )
        )
    if not (settings.dkim_selector and settings.dkim_domain and settings.dkim_key_file):
        found.append(
            Finding(
                "dkim_off",
                WARN,
                "DKIM signing is off (dkim.selector, dkim.domain, dkim.key_file): Gmail and"
                " Yahoo expect bulk senders to sign",
            )
        )
    try:
        loopback_warning = links.check_base_url(settings)
    except ConfigError as exc:
        found.append(Finding("base_url_not_https", BLOCK, str(exc)))
    else:
        if loopback_warning:
            found.append(Finding("base_url_not_https", WARN, loopback_warning))
    return found


# --- SpamAssassin ------------------------------------------------------------------------------

_RULE_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


@dataclass(frozen=True)
class SpamResult:
    score: float
    rules: list[str]  # "1.2 RULE_NAME description"


def sample_message(db: Database, settings: Settings, edition_id: int) -> bytes:
    """The edition as a sample subscriber would get it (links that change nothing)."""
    edition = pipeline.load_edition(db, edition_id)
    template = pipeline.edition_message(settings, edition)
    values = sample_values(settings)
    data, _ = template.render(
        to_email=SAMPLE_EMAIL,
        to_name=SAMPLE_NAME,
        unsubscribe_url=values["UNSUBSCRIBE_URL"],
        preferences_url=values["PREFERENCES_URL"],
    )
    return data


def sample_values(settings: Settings) -> dict[str, str]:
    """Per-recipient values of a sample subscriber, for checks and ``preview``."""
    base = settings.base_url.rstrip("/")
    return {
        "UNSUBSCRIBE_URL": f"{base}/u/sample",
        "PREFERENCES_URL": f"{base}/p/sample",
        "NAME": SAMPLE_NAME,
    }


def sample_copy(settings: Settings, html: str, text: str) -> tuple[str, str]:
    """The edition's HTML and text with a sample subscriber's values (for ``preview``)."""
    values = sample_values(settings)
    html_values = {k: escape(v, quote=True) for k, v in values.items()}
    return contract.fill_holes(html, html_values), contract.fill_holes(text, values)


def spamassassin_available() -> bool:
    return shutil.which("spamassassin") is not None


def spam_score(message: bytes, timeout: float = 120.0) -> SpamResult:
    """SpamAssassin's local rules (no network tests) over the message."""
    try:
        done = subprocess.run(
            ["spamassassin", "-L", "-t"],
            input=message,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NewsletterError(f"spamassassin could not run: {exc}") from None
    parsed = email.message_from_bytes(done.stdout, policy=policy.default)
    status = str(parsed.get("X-Spam-Status", ""))
    match = re.search(r"score=(-?\d+(?:\.\d+)?)", status)
    if match is None:
        raise NewsletterError("spamassassin gave no score (is it installed completely?)")
    rules = []
    report = done.stdout.decode("utf-8", "replace").split("Content analysis details:", 1)
    if len(report) == 2:
        for line in report[1].splitlines():
            rule = _RULE_LINE.match(line)
            if rule:
                rules.append(f"{rule.group(1)} {rule.group(2)} {rule.group(3).strip()}")
    return SpamResult(score=float(match.group(1)), rules=rules)


def spam_finding(result: SpamResult) -> Finding:
    if result.score >= SPAM_REQUIRED:
        level = FORCE
    elif result.score >= SPAM_WORRY:
        level = WARN
    else:
        level = INFO
    return Finding(
        "spamassassin",
        level,
        f"SpamAssassin (local rules) scores it {result.score:.1f} ({SPAM_REQUIRED:.1f} is spam)",
        details=result.rules,
    )


# --- article links over HTTP -------------------------------------------------------------------

Fetch = Callable[[str], str | None]  # URL -> problem, or None when it answers


def fetch_problem(url: str, timeout: float = LINK_TIMEOUT) -> str | None:
    """None when ``url`` answers below 400 (redirects followed); else what went wrong."""
    for method in ("HEAD", "GET"):  # some servers refuse HEAD
        request = urllib.request.Request(
            url, method=method, headers={"User-Agent": "newsletter-link-check/1"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read(1024 if method == "GET" else 0)
                return None
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code in (403, 405, 501):
                continue
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"unreachable ({reason})"
    return None


def link_findings(urls: Iterable[str], fetch: Fetch = fetch_problem) -> list[Finding]:
    unique = list(dict.fromkeys(urls))
    with ThreadPoolExecutor(max_workers=LINK_WORKERS) as pool:
        problems = list(pool.map(fetch, unique))
    broken = [f"{url}: {problem}" for url, problem in zip(unique, problems, strict=True) if problem]
    if not broken:
        return [Finding("links", INFO, f"all {len(unique)} article links answer")]
    return [Finding("broken_links", WARN, f"{len(broken)} article links fail", details=broken)]


# --- the entry points ----------------------------------------------------------------------------


def check_edition(
    db: Database,
    settings: Settings,
    edition_id: int,
    *,
    check_links: bool = False,
    spamassassin: bool = True,
) -> CheckReport:
    """Everything ``newsletter check`` reports, the blocking findings first."""
    edition = editions.get(db, edition_id)
    findings = content_findings(edition.html, edition.text) + settings_findings(settings)
    report = CheckReport(edition=edition.id, html_bytes=edition.html_bytes, findings=findings)
    if spamassassin and spamassassin_available():
        result = spam_score(sample_message(db, settings, edition_id))
        report.spam_score = result.score
        findings.append(spam_finding(result))
    elif spamassassin:
        findings.append(
            Finding("spamassassin", INFO, "spamassassin is not installed: no spam score")
        )
    if check_links:
        urls = [a.url for a in editions.articles_of(db, edition)]
        findings.extend(link_findings(urls))
    order = {BLOCK: 0, FORCE: 1, WARN: 2, INFO: 3}
    findings.sort(key=lambda f: order[f.level])
    return report


def blocking_findings(db: Database, settings: Settings, edition_id: int | None) -> list[Finding]:
    """The findings that stop a send: quick, no network, no SpamAssassin. ``edition_id``
    None: the settings alone (a digest's dry run, before it builds anything)."""
    found = settings_findings(settings)
    if edition_id is not None:
        edition = editions.get(db, edition_id)
        found = content_findings(edition.html, edition.text) + found
    return [f for f in found if f.level in (BLOCK, FORCE)]


def before_send(
    db: Database, settings: Settings, edition_id: int | None, *, force: bool = False
) -> None:
    """The one check every real send runs first (`newsletter send`, `newsletter digest`):
    raises SendRefused listing what stops it. ``force`` lets the overridable findings
    through; an edition without an unsubscribe link never goes."""
    if edition_id is not None:
        pipeline.refuse_unsealed(pipeline.load_edition(db, edition_id))
    found = blocking_findings(db, settings, edition_id)
    if force:
        found = [f for f in found if f.level == BLOCK]
    if found:
        raise SendRefused(edition_id, found)


def test_copy_warnings(settings: Settings) -> list[str]:
    """What a test copy (`send --to`) goes out with although a real send would refuse it:
    a test copy is not a real send, so these only warn."""
    return [
        f"{f.message}: a real send would refuse" + ("" if f.level == BLOCK else " without --force")
        for f in settings_findings(settings)
        if f.level in (BLOCK, FORCE)
    ]
