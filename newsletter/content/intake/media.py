"""An item's image and its alt text: Media RSS, enclosures, and the images in its content.

feedparser folds ``media:description`` into the entry content, losing which image it
describes, so Media RSS is read from the XML itself when the XML parses; a feed that only
a lenient parser can read falls back to feedparser's ``media_content``. When the media
element has no description, the alt text of the same image in the content serves.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from newsletter.content.intake.text import collapse, content_images, html_to_text

MEDIA = "{http://search.yahoo.com/mrss/}"
ITEM_TAGS = ("item", "{http://purl.org/rss/1.0/}item", "{http://www.w3.org/2005/Atom}entry")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".svg")
# WordPress serves one upload in several sizes: photo-1024x683.jpg is photo.jpg (Substack
# writes photo_1456x816.jpeg); CDNs put the same file under another host and path.
_SIZE_SUFFIX = re.compile(r"[-_]\d{2,5}x\d{2,5}(?=\.[a-z0-9]+$)|-scaled(?=\.[a-z0-9]+$)")


@dataclass(frozen=True)
class Image:
    url: str
    alt: str | None


def looks_like_image(url: str | None, mime: str | None, medium: str | None = None) -> bool:
    if not url:
        return False
    if medium or mime:
        return medium == "image" or (mime or "").startswith("image/")
    return url.lower().split("?")[0].endswith(IMAGE_SUFFIXES)


def media_images(body: bytes, count: int) -> list[Image | None]:
    """The Media RSS image of each item, by position; Nones when the XML disagrees."""
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, LookupError, ValueError, RecursionError):
        # Ill-formed XML, or a declared encoding Python does not know (feedparser copes).
        return [None] * count
    items = [el for el in root.iter() if el.tag in ITEM_TAGS]
    if len(items) != count:  # cannot pair items with entries safely
        return [None] * count
    return [_media_image(item) for item in items]


def _media_image(item: ET.Element) -> Image | None:
    item_alt = _text(item.find(f"{MEDIA}description"))
    candidates = [*item.findall(f"{MEDIA}content"), *item.findall(f"{MEDIA}group/{MEDIA}content")]
    for content in candidates:
        url = content.get("url")
        if looks_like_image(url, content.get("type"), content.get("medium")):
            alt = _text(content.find(f"{MEDIA}description")) or item_alt
            return Image(collapse(url or ""), alt)
    thumb = item.find(f"{MEDIA}thumbnail")
    if thumb is not None and thumb.get("url"):
        return Image(collapse(thumb.get("url") or ""), item_alt)
    return None


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    raw = "".join(element.itertext())
    # Media RSS marks HTML descriptions with type="html"; plain is the default.
    text = html_to_text(raw) if element.get("type") == "html" else collapse(raw)
    return text or None


def entry_image(entry: Any, from_xml: Image | None) -> Image | None:
    """The item's image: Media RSS, else an enclosure, else the first image of its content;
    its alt text from the media element, else from the same image in the content."""
    image = from_xml or _feedparser_media(entry) or _enclosure(entry) or _itunes(entry)
    markup = " ".join(
        [*(c.get("value") or "" for c in entry.get("content", [])), entry.get("summary") or ""]
    )
    in_content = [(src, alt) for src, alt in content_images(markup) if src.startswith("http")]
    if image is None:
        if not in_content:
            return None
        src, alt = in_content[0]
        return Image(src, alt or None)
    if image.alt:
        return image
    return Image(image.url, alt_in_content(image.url, markup))


def alt_in_content(url: str, markup: str) -> str | None:
    """The alt text the same picture has where the content shows it."""
    return next((a for s, a in content_images(markup) if a and _same_picture(s, url)), None)


def _feedparser_media(entry: Any) -> Image | None:
    for content in entry.get("media_content", []):
        url = content.get("url")
        if looks_like_image(url, content.get("type"), content.get("medium")):
            return Image(collapse(url or ""), None)
    for thumb in entry.get("media_thumbnail", []):
        if thumb.get("url"):
            return Image(collapse(thumb["url"]), None)
    return None


def _enclosure(entry: Any) -> Image | None:
    for link in entry.get("links", []):
        if link.get("rel") == "enclosure" and looks_like_image(link.get("href"), link.get("type")):
            return Image(collapse(link["href"]), None)
    return None


def _itunes(entry: Any) -> Image | None:
    """A podcast episode's ``itunes:image``, which feedparser keeps as the entry's image."""
    image = entry.get("image")
    href = image.get("href") if isinstance(image, dict) else None
    return Image(collapse(href), None) if isinstance(href, str) and href.strip() else None


def _same_picture(a: str, b: str) -> bool:
    """The same upload, maybe in another size or behind a CDN: the file names agree."""
    return _picture_key(a) == _picture_key(b) != ""


def _picture_key(url: str) -> str:
    name = unquote(urlsplit(url).path).rsplit("/", 1)[-1].lower()
    return _SIZE_SUFFIX.sub("", name) if "." in name else ""
