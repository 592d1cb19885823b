"""What every edition template must do, checked on its output: carry the unsubscribe link
(an error) and show the articles (a warning). docs/templates.md describes the contract."""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.content.articles import Article
from newsletter.content.mjml_check import TemplateError
from newsletter.mail import placeholders


def require_unsubscribe(label: str, html: str, text: str) -> None:
    """An edition must let every reader leave: both parts need the unsubscribe link."""
    missing = [
        part
        for part, body in (("HTML", html), ("text", text))
        if placeholders.UNSUBSCRIBE_URL not in body
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
