"""What a story card shows, in the HTML and the text alike: its link (http(s) only), its
teasers cut at a word boundary, its date and image alt text in the story's own language."""

from __future__ import annotations

import re
from typing import Any

from newsletter import dates, i18n
from newsletter.config import LANGUAGES, Settings
from newsletter.content.articles import Article, is_web_address
from newsletter.errors import NewsletterError

SUMMARY_LIMIT = 500  # characters; a card is a teaser, and Gmail clips long messages
IMAGE_WIDTH = 552  # px: the 600 px body minus the card's side padding
SHORT_SUMMARY_LIMIT = 220  # a compact story's teaser
THUMB_WIDTH = 176  # px: a compact story's thumbnail column (a third of the body) minus padding


def shorten(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Cut at a word boundary with an ellipsis; short text is returned unchanged."""
    clean = " ".join(text.split())
    if len(clean) <= limit:
        return clean
    cut = clean[:limit].rsplit(" ", 1)[0].rstrip(",.;:–-")
    return cut + "…"


def checked_link(url: str, title: str) -> str:
    """An article's link, which must be http(s).

    Feeds are outside input: a ``javascript:`` or ``data:`` link would run when staff click
    it in ``preview --open``, and mail filters treat such links as phishing.
    """
    if not is_web_address(url.strip()):
        raise NewsletterError(f"article {title!r}: its link {url!r} is not an http(s) address")
    return url


def article_view(article: Article, lang: str, settings: Settings) -> dict[str, Any]:
    """What a card shows; HTML and text use the same values (same date format too).

    ``lang`` is the article's own language (its block carries ``lang="..."``), else the
    edition's.
    """
    strings = i18n.strings(lang)
    alt = (article.image_alt or "").strip() or strings["image_alt_fallback"].format(
        title=article.title
    )
    return {
        "id": article.id,
        "title": article.title,
        "url": checked_link(article.url, article.title),
        "summary": shorten(article.summary or ""),
        "short_summary": shorten(article.summary or "", SHORT_SUMMARY_LIMIT),
        "date": dates.format_date(article.published, lang, settings.tz),
        "category": article.category or "",
        "image": article.image or "",
        "image_alt": alt,
        "image_width": IMAGE_WIDTH,
        "thumb_width": THUMB_WIDTH,
        "lang": article.lang or lang,
    }


_LANG_TAG = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})?")


def article_in_its_language(article: Article, lang: str, settings: Settings) -> dict[str, Any]:
    """The article's view with its own ``lang`` (a feed may say ``de`` or ``en-US``): its
    fallbacks (image alt) in its language when the tool speaks it, else in the edition's;
    its date in the edition's language, like the rest of the chrome."""
    own = article.language(settings.default_lang).strip()  # None: the default language
    own = own if _LANG_TAG.fullmatch(own) else lang
    view = article_view(article, own if own in LANGUAGES else lang, settings)
    view["lang"] = own
    # The date belongs to the edition's chrome (the template marks it with the edition's lang).
    view["date"] = dates.format_date(article.published, lang, settings.tz)
    return view
