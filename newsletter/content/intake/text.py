"""HTML reduced to plain text for titles and summaries.

Feeds put markup (and escaped markup) in titles and descriptions. What we store is the text a
reader would see: tags dropped, the contents of scripts and styles dropped, entities decoded,
whitespace collapsed to single spaces.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from html.parser import HTMLParser

# Elements whose content is code or metadata, never text for a reader.
_SKIP = frozenset({"script", "style", "template", "noscript", "head", "title", "svg", "math"})
# Elements that end a line of text; without a space here "<p>a</p><p>b</p>" would read "ab".
_BREAKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
        "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
        "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BREAKS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str | None) -> str:
    """The visible text of an HTML fragment on one line (plain text passes through)."""
    if not markup:
        return ""
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    return collapse("".join(collector.parts))


def collapse(text: str) -> str:
    """Runs of whitespace (including no-break spaces) become one space; ends are trimmed."""
    return " ".join(text.replace("\u00a0", " ").split())


def one_line(problem: object) -> str:
    """An exception's message on one line (parsers put line breaks in theirs), or its type."""
    return " ".join(str(problem).split()) or type(problem).__name__


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,.;:-–")
    return f"{cut}…"


# "Read more" links that blogs append to every summary; the email card has its own button.
_READ_MORE = re.compile(
    r"(?P<dots>\s*\[?\s*(?:…|\.\.\.)\s*\]?)?\s*[\[(]?\s*(?:"
    r"lue\s+lisää|lue\s+koko\s+(?:juttu|artikkeli|teksti)|jatka\s+lukemista"
    r"|läs\s+mer|läs\s+hela\s+(?:artikeln|inlägget|texten)|fortsätt\s+läsa"
    r"|read\s+more|continue\s+reading|keep\s+reading|read\s+the\s+full\s+(?:post|story|article)"
    r")\b(?P<rest>.{0,200})$",
    re.IGNORECASE | re.DOTALL,
)
# WordPress feeds end every item with "The post X appeared first on Site."
_APPEARED_FIRST = re.compile(r"\s*The post .{1,300} appeared first on .{1,200}$", re.DOTALL)
_TRAILING_ELLIPSIS = re.compile(r"\s*\[\s*(?:…|\.\.\.)\s*\]$")


def strip_read_more(text: str) -> str:
    """A summary without its trailing read-more link; a cut-off marker stays as one "…"."""
    text = _APPEARED_FIRST.sub("", text)
    match = _READ_MORE.search(text)
    # What follows the phrase may be the title (screen-reader text) or an arrow, never a
    # sentence of its own: "Lue lisää asiasta sivuiltamme." is text, not a link.
    if match and not re.search(r"[.!?]\s+\w", match.group("rest")):
        kept = text[: match.start()].rstrip(" –—-|·:»")
        text = kept + ("…" if match.group("dots") and kept else "")
    text = _TRAILING_ELLIPSIS.sub("…", text)
    return text.strip()


class _ImageCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and len(self.images) < 50:
            values = dict(attrs)
            src, alt = collapse(values.get("src") or ""), collapse(values.get("alt") or "")
            if src:
                self.images.append((src, alt))

    handle_startendtag = handle_starttag


def content_images(markup: str | None) -> list[tuple[str, str]]:
    """(src, alt) of the ``<img>`` elements of an HTML fragment, in order."""
    if not markup or "<img" not in markup.lower():
        return []
    collector = _ImageCollector()
    collector.feed(markup[:1_000_000])
    collector.close()
    return collector.images


def decode_text(data: bytes, name: str) -> str:
    """Text of a file as spreadsheets and editors save it: UTF-8 (with or without BOM),
    UTF-16 with a BOM, else Windows-1252; a file that is none of these is refused."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "strict")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name}: broken UTF-16 at byte {exc.start}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise ValueError(
            f"{name}: byte {byte:#04x} at offset {exc.start} is neither UTF-8 nor Windows-1252:"
            " save the file as UTF-8"
        ) from None


def raw_text_of(record: Mapping[str, object], *names: str) -> str:
    """The first of ``names`` whose value is plain text or a number, as text (for reports)."""
    for name in names:
        found = record.get(name)
        if isinstance(found, Mapping):  # WordPress: {"rendered": ...}
            found = found.get("rendered")
        if isinstance(found, str | int | float) and not isinstance(found, bool) and found != "":
            return str(found)[:1000]
    return ""
