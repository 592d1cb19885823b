"""HTML reduced to plain text for titles and summaries.

Feeds put markup (and escaped markup) in titles and descriptions. What we store is the text a
reader would see: tags dropped, the contents of scripts and styles dropped, entities decoded,
whitespace collapsed to single spaces.
"""

from __future__ import annotations

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
