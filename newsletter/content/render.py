"""Rendering emails: Jinja2 -> MJML -> mjml-python -> premailer, plus a text part.

The HTML keeps the per-recipient holes of ``placeholders`` (``%%UNSUBSCRIBE_URL.<marker>%%``
...): an edition is rendered once and filled per recipient at send time by substitution.
Each step is a separate function so the benchmark can time them one by one.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import markupsafe

import newsletter
from newsletter import dates, i18n
from newsletter.clock import now
from newsletter.config import Settings
from newsletter.content import contract, mjml_check
from newsletter.content.archive import EditionLinks
from newsletter.content.article_views import article_in_its_language
from newsletter.content.articles import Article
from newsletter.content.mjml_check import TemplateError
from newsletter.mail import placeholders

HTML_SUFFIX = ".mjml.j2"
TEXT_SUFFIX = ".txt.j2"
DEFAULT_EDITION = "edition"
MESSAGE = "message"

# A block whose css-class holds ``nl-lang-sv`` gets ``lang="sv"`` (MJML has no lang attribute);
# not the copies MJML makes for Outlook's tables (``nl-lang-sv-outlook``).
_LANG_CLASS = re.compile(
    r'class="([^"]*?\bnl-lang-([a-z]{2,3}(?:-(?!outlook\b)[A-Za-z0-9]{1,8})?)\b(?!-outlook)[^"]*)"'
)
_MJML_RESET = re.compile(r"<style(\s[^>]*)?>(\s*#outlook a)")
_MJML_POSITION = re.compile(r"at position (\d+):(\d+)")
_BLANK_LINES = re.compile(r"\n{3,}")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# An <img> directly inside the fixed-width cell mjml-python wraps it in (maybe inside a link).
_IMAGE_CELL = re.compile(
    r'(<td\b[^>]*?width:\s*(\d+)px[^>]*>\s*(?:<a\b[^>]*>\s*)?<img\b[^>]*?\swidth=")100%(")'
)


__all__ = ["Rendered", "TemplateChoice", "TemplateError"]


@dataclass(frozen=True)
class Rendered:
    html: str
    text: str


@dataclass(frozen=True)
class TemplateChoice:
    """Which templates render an email, and the folders their includes are looked up in."""

    html: str  # loader name of the .mjml.j2 template
    text: str  # loader name of the .txt.j2 template
    search: tuple[Path, ...]
    label: str  # what the edition records as its template


def packaged_templates_dir() -> Path:
    """The templates shipped with the package: inside a wheel, else the repository's folder."""
    installed = Path(newsletter.__file__).parent / "_templates"
    if installed.is_dir():
        return installed
    return Path(newsletter.__file__).resolve().parent.parent / "templates"


def search_path(settings: Settings, *first: Path) -> tuple[Path, ...]:
    """Folders in lookup order: an explicit template's own folder, the configured, the packaged."""
    folders = [*first]
    if settings.templates_dir is not None:
        folders.append(Path(settings.templates_dir))
    folders.append(packaged_templates_dir())
    return tuple(dict.fromkeys(p.resolve() for p in folders))


def _autoescape(name: str | None) -> bool:
    # Only the MJML templates produce markup; the text part must keep "&" and "<" as they are.
    return bool(name) and not str(name).endswith(TEXT_SUFFIX)


# C0 controls (but tab and newlines) and DEL: text cannot show them, and MJML cannot parse a
# document holding one (a stray backspace from a pasted title stopped the whole build).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: Any) -> Any:
    """Jinja's ``finalize``: every printed value loses its control characters."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return _CONTROLS.sub("", value)
    return value


@functools.lru_cache(maxsize=16)
def environment(search: tuple[Path, ...]) -> jinja2.Environment:
    """One Jinja environment per search path (compiled templates are cached inside it)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search]),
        autoescape=_autoescape,
        finalize=_printable,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def choose_template(settings: Settings, template: str | None, default: str) -> TemplateChoice:
    """``--template``: a path to a .mjml.j2 file, or a name looked up in the template folders.

    The text part uses the template's sibling ``<name>.txt.j2`` when there is one, else the
    default text template: staff can restyle the HTML without writing a text template.
    """
    if not template:
        search = search_path(settings)
        return TemplateChoice(default + HTML_SUFFIX, default + TEXT_SUFFIX, search, default)
    candidate = Path(template).expanduser()
    if candidate.is_file() or len(candidate.parts) > 1:
        if not candidate.is_file():
            raise TemplateError(f"template file {template} does not exist")
        search = search_path(settings, candidate.parent)
        return _with_text(candidate.name, search, default, str(candidate))
    search = search_path(settings)
    name = template if template.endswith(HTML_SUFFIX) else template + HTML_SUFFIX
    if not any((folder / name).is_file() for folder in search):
        raise TemplateError(
            f"unknown template {template!r}: looked for {name} in the templates folder"
            " (templates_dir in the settings) and the packaged templates"
        )
    return _with_text(name, search, default, template)


def _with_text(
    html_name: str, search: tuple[Path, ...], default: str, label: str
) -> TemplateChoice:
    stem = html_name.removesuffix(HTML_SUFFIX)
    text_name = stem + TEXT_SUFFIX
    if not any((folder / text_name).is_file() for folder in search):
        text_name = default + TEXT_SUFFIX
    return TemplateChoice(html_name, text_name, search, label)


def render_template(choice: TemplateChoice, name: str, context: Mapping[str, Any]) -> str:
    """Jinja step; template errors name the template file and line."""
    env = environment(choice.search)
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or exc.name or name
        raise TemplateError(f"template {where}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {name}: cannot find {exc.name}") from None
    except jinja2.TemplateError as exc:  # undefined names, bad filter arguments, ...
        raise TemplateError(f"template {_jinja_where(exc, name)}: {exc.message}") from None


def _jinja_where(exc: BaseException, name: str) -> str:
    """File and line of a render-time error, read from the traceback Jinja rewrites.

    The innermost template frame wins, so an error in an included partial names the partial.
    """
    where = name
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((HTML_SUFFIX, TEXT_SUFFIX)):
            where = f"{filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return where


def compile_mjml(source: str, *, template: str) -> str:
    """MJML step (mjml-python); its errors carry a byte span, turned here into a line."""
    from mjml import mjml2html  # imported here: most commands never render

    try:
        return mjml2html(source, fonts={})
    except ValueError as exc:
        message = str(exc)
        match = _MJML_POSITION.search(message)
        where = ""
        if match:
            # MRML reports byte offsets into the UTF-8 source.
            offset = int(match.group(1))
            line_no = source.encode("utf-8")[:offset].count(b"\n") + 1
            snippet = source.splitlines()[line_no - 1].strip()[:80] if source else ""
            where = f" at line {line_no} of its MJML output ({snippet!r})"
        raise TemplateError(f"template {template}: invalid MJML{where}: {message}") from None


def inline_css(html: str) -> str:
    """Inlining step (premailer), with the settings that keep MJML's output working.

    ``strip_important`` would break the mobile @media rules; a lower-case doctype is
    dropped by premailer (an upper-case one survives); ``bgcolor`` attributes it would add
    from CSS fight the dark-mode rules; the network is never touched.
    """
    from premailer import Premailer  # ~80 ms to import; most commands never inline

    if html[:15].lower() == "<!doctype html>":
        html = "<!DOCTYPE html>" + html[15:]
    # MJML's reset block (``table, td { border-collapse ... }``, ``p { margin ... }``) stays in
    # the head as the official MJML leaves it: inlined into every cell it cost ~20 KB at 20
    # stories, a fifth of Gmail's clip, for what every client reads from <style> anyway.
    html = _MJML_RESET.sub(r'<style data-premailer="ignore"\1>\2', html, count=1)
    return Premailer(
        html,
        allow_network=False,
        strip_important=False,
        keep_style_tags=True,
        remove_classes=False,
        disable_basic_attributes=["bgcolor"],
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)


def fix_image_widths(html: str) -> str:
    """Give every image its pixel width as an attribute.

    mjml-python writes ``width="100%"`` on ``<img>`` (the official MJML writes pixels);
    Outlook ignores CSS widths and would show the image at its natural size. The cell
    around it has the pixel width; the inline ``width:100%`` style still lets the image
    shrink on phones.
    """
    return _IMAGE_CELL.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}", html)


def mark_languages(html: str) -> str:
    """``lang="xx"`` on every element whose class names ``nl-lang-xx``: screen readers then
    read an article in its own language inside an edition in another."""
    return _LANG_CLASS.sub(r'lang="\2" class="\1"', html)


def to_html(choice: TemplateChoice, context: Mapping[str, Any]) -> str:
    source = render_template(choice, choice.html, context)
    html = inline_css(compile_mjml(source, template=choice.html))
    return mark_languages(fix_image_widths(html))


def to_text(choice: TemplateChoice, context: Mapping[str, Any]) -> str:
    text = render_template(choice, choice.text, context)
    lines = [line.rstrip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"


def org_context(settings: Settings) -> dict[str, str]:
    website = settings.org_website
    label = urlsplit(website).netloc or website if website else ""
    return {
        "name": settings.org_name,
        "address": settings.org_address,
        "website": website,
        "website_label": label.removeprefix("www.") if label else "",
        "email": settings.org_email,
        "logo_url": settings.logo_url,
    }


def split_paragraphs(text: str | None) -> list[str]:
    """Blank-line separated paragraphs with inner line breaks folded into spaces."""
    if not text:
        return []
    return [" ".join(p.split()) for p in _PARAGRAPH_BREAK.split(text.strip()) if p.strip()]


def edition_context(
    settings: Settings,
    *,
    lang: str,
    subject: str,
    preheader: str,
    intro: str | None,
    articles: Sequence[Article],
    topic_names: Iterable[str],
    holes: placeholders.Holes = placeholders.LEGACY,
    intro_lang: str | None = None,
    subject_lang: str | None = None,
    contacts: Sequence[Mapping[str, str]] = (),
    public: EditionLinks | None = None,
    web_version: bool = False,
) -> dict[str, Any]:
    """Every variable an edition template receives (docs/templates.md lists them)."""
    names = ", ".join(topic_names)
    strings = i18n.strings(lang)
    public = public or EditionLinks()
    views = [article_in_its_language(a, lang, settings) for a in articles]
    return {
        "lang": lang,
        "intro_lang": intro_lang or lang,
        "heading_lang": subject_lang or lang,
        "t": strings,
        "org": org_context(settings),
        "subject": subject,
        "preheader": preheader,
        "heading": subject,
        "kicker": f"{strings['newsletter']}: {names}" if names else strings["newsletter"],
        "topics": names,
        "edition_date": dates.format_date(now(), lang, settings.tz),
        "intro_paragraphs": split_paragraphs(intro),
        "articles": views,
        "lead": views[0] if views else None,
        "more_articles": views[1:],
        "contacts": [dict(c) for c in contacts],
        "reason": strings["why_web" if web_version else "why_edition"].format(topics=names),
        "web_version": web_version,
        "web_url": public.web_url,
        "archive_url": public.archive_url,
        "subscribe_url": public.subscribe_url,
        # A web version is public: no per-recipient hole, so no personal link or name.
        "unsubscribe_url": "" if web_version else holes.unsubscribe_url,
        "preferences_url": "" if web_version else holes.preferences_url,
        "name": "" if web_version else holes.name,
    }


def render_edition(
    settings: Settings,
    *,
    lang: str,
    subject: str,
    preheader: str,
    intro: str | None,
    articles: Sequence[Article],
    topic_names: Iterable[str],
    template: str | None = None,
    holes: placeholders.Holes = placeholders.LEGACY,
    intro_lang: str | None = None,
    subject_lang: str | None = None,
    contacts: Sequence[Mapping[str, str]] = (),
    public: EditionLinks | None = None,
) -> tuple[Rendered, TemplateChoice]:
    """The HTML and text of an edition, with ``holes`` for per-recipient values (pass a
    fresh ``Holes.new()`` for anything that is sent: see ``placeholders``).

    ``lang`` is the variant's (headings, buttons, footer, dates); ``intro_lang`` and
    ``subject_lang`` the intro's and subject's when another (a default-language intro in a
    Swedish variant).

    The template is checked first (its MJML, see ``mjml_check``) and its output must carry
    the unsubscribe link; a template that ignores the articles gets a warning
    (``EditionWarnings``) rather than an error.
    """
    choice = choose_template(settings, template, DEFAULT_EDITION)
    context = edition_context(
        settings,
        lang=i18n.check_lang(lang),
        subject=subject,
        preheader=preheader,
        intro=intro,
        articles=articles,
        topic_names=topic_names,
        holes=holes,
        intro_lang=intro_lang,
        subject_lang=subject_lang,
        contacts=contacts,
        public=public,
    )
    mjml_check.check_template(choice.search, choice.html)
    rendered = Rendered(html=to_html(choice, context), text=to_text(choice, context))
    contract.require_unsubscribe(
        choice.label, rendered.html, _text_prints_unsubscribe(choice, context)
    )
    return rendered, choice


def _text_prints_unsubscribe(choice: TemplateChoice, context: Mapping[str, Any]) -> bool:
    """Whether the text template prints ``unsubscribe_url`` itself: rendered once more with a
    random marker in its place (Jinja only, ~0.1 ms), which no article can contain."""
    marker = "unsubscribe-" + secrets.token_hex(8)
    return marker in render_template(choice, choice.text, {**context, "unsubscribe_url": marker})


def render_web_version(
    settings: Settings,
    choice: TemplateChoice,
    *,
    lang: str,
    subject: str,
    preheader: str,
    intro: str | None,
    articles: Sequence[Article],
    topic_names: Iterable[str],
    contacts: Sequence[Mapping[str, str]] = (),
    public: EditionLinks | None = None,
    intro_lang: str | None = None,
    subject_lang: str | None = None,
) -> str:
    """The public page of an edition: the same template with ``web_version`` true, so no
    personal link or placeholder is in it (the footer offers sign-up and the archive)."""
    context = edition_context(
        settings,
        lang=i18n.check_lang(lang),
        subject=subject,
        preheader=preheader,
        intro=intro,
        articles=articles,
        topic_names=topic_names,
        contacts=contacts,
        public=public,
        web_version=True,
        intro_lang=intro_lang,
        subject_lang=subject_lang,
    )
    html = to_html(choice, context)
    # A user's template may print a per-recipient value regardless: blank it out.
    return contract.HOLE.sub("", html)


def render_message(
    settings: Settings,
    *,
    lang: str,
    subject: str,
    heading: str,
    paragraphs: list[str],
    button_label: str,
    button_url: str,
    reason: str,
) -> Rendered:
    """A one-off transactional mail (e.g. the double opt-in request) in the newsletter's look.

    Its footer carries the contact details and ``reason`` but no unsubscribe link: the
    reader is not on a list yet.
    """
    lang = i18n.check_lang(lang)
    context = {
        "lang": lang,
        "t": i18n.strings(lang),
        "org": org_context(settings),
        "subject": subject,
        "preheader": paragraphs[0] if paragraphs else "",
        "heading": heading,
        "kicker": "",
        "paragraphs": list(paragraphs),
        "button_label": button_label,
        "button_url": button_url,
        "reason": reason,
        "unsubscribe_url": "",
        "preferences_url": "",
        "web_version": False,
        "web_url": "",
        "archive_url": "",
        "subscribe_url": "",
        "topics": "",
    }
    choice = choose_template(settings, None, MESSAGE)
    mjml_check.check_template(choice.search, choice.html)  # templates_dir may replace it
    return Rendered(html=to_html(choice, context), text=to_text(choice, context))
