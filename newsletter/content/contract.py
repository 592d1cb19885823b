"""What every edition template must do, checked on its output: carry the unsubscribe link
(an error) and show the articles (a warning). docs/templates.md describes the contract."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from newsletter.content.articles import Article
from newsletter.content.mjml_check import TemplateError

# A per-recipient hole in either form: ``%%NAME%%``, or ``%%NAME.<marker>%%`` where the
# marker is the edition's own (sealed holes).
HOLE = re.compile(r"%%(UNSUBSCRIBE_URL|PREFERENCES_URL|NAME)(?:\.[0-9a-f]{32})?%%")
# The link itself, as an attribute: autoescaped content can never write one, so an article
# that quotes the placeholder in its text cannot stand in for a missing link.
UNSUBSCRIBE_LINK = re.compile(r"""href\s*=\s*["']?%%UNSUBSCRIBE_URL(?:\.[0-9a-f]{32})?%%""")


def fill_holes(text: str, values: Mapping[str, str]) -> str:
    """Every hole replaced by ``values[name]`` (``UNSUBSCRIBE_URL``, ``PREFERENCES_URL``,
    ``NAME``) in one pass: for previews and public pages, never for sending."""
    return HOLE.sub(lambda m: values[m.group(1)], text)


def has_text_unsubscribe(text: str) -> bool:
    return any(m.group(1) == "UNSUBSCRIBE_URL" for m in HOLE.finditer(text))


def has_unsubscribe_link(html: str) -> bool:
    return UNSUBSCRIBE_LINK.search(html) is not None


def require_unsubscribe(label: str, html: str, text_has_link: bool) -> None:
    """An edition must let every reader leave: both parts need the unsubscribe link.

    ``text_has_link``: the text template printed ``unsubscribe_url`` (the caller knows, by
    rendering it with a marker no content can contain)."""
    missing = [
        part
        for part, ok in (("HTML", has_unsubscribe_link(html)), ("text", text_has_link))
        if not ok
    ]
    if missing:
        raise TemplateError(
            f"template {label} has no unsubscribe link in its {' and '.join(missing)}"
            ' part: add <a href="{{ unsubscribe_url }}">{{ t.unsubscribe }}</a>'
            " (the packaged partials/footer templates carry it)"
        )


def ignored_articles(html: str, articles: Sequence[Article]) -> bool:
    """True when the HTML links none of the edition's articles (e.g. a template's demo
    content used as is): the text part would carry them while the HTML shows something else.
    """
    unescaped = html.replace("&amp;", "&")
    return bool(articles) and not any(a.url in unescaped for a in articles)
