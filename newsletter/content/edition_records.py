"""What an edition is, as the rest of the tool sees it: the stored edition, its language
variants, a list row, and what ``build`` reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SIZE_WARNING = 90 * 1024  # bytes; Gmail clips HTML above ~102 KB


@dataclass(frozen=True)
class BuildResult:
    edition_id: int
    topics: list[str]  # slugs
    subject: str
    articles: list[str]  # URLs, in the order shown
    html_path: Path
    text_path: Path
    html_bytes: int
    lang: str = ""  # the main variant's
    variants: list[VariantFiles] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def too_big(self) -> bool:
        return any(v.html_bytes > SIZE_WARNING for v in self.variants) or (
            self.html_bytes > SIZE_WARNING
        )

    def as_json(self) -> dict:
        return {
            "edition": self.edition_id,
            "topics": self.topics,
            "subject": self.subject,
            "lang": self.lang,
            "articles": self.articles,
            "html": str(self.html_path),
            "text": str(self.text_path),
            "html_bytes": self.html_bytes,
            "variants": [v.as_json() for v in self.variants],
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class VariantFiles:
    """What ``build`` reports for one language variant."""

    lang: str
    subject: str
    articles: list[str]  # URLs, in the order shown
    html_path: Path
    text_path: Path
    html_bytes: int

    def as_json(self) -> dict:
        return {
            "lang": self.lang,
            "subject": self.subject,
            "articles": self.articles,
            "html": str(self.html_path),
            "text": str(self.text_path),
            "html_bytes": self.html_bytes,
        }


@dataclass(frozen=True)
class Variant:
    """One language's rendering of an edition."""

    lang: str
    subject: str
    preheader: str
    intro: str
    html: str
    text: str
    article_ids: list[int]
    web_html: str = ""  # the public web version: no personal link or hole in it

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    def as_json(self) -> dict:
        return {
            "lang": self.lang,
            "subject": self.subject,
            "preheader": self.preheader,
            "article_ids": self.article_ids,
            "html_bytes": self.html_bytes,
            "text_bytes": len(self.text.encode("utf-8")),
        }


@dataclass(frozen=True)
class Edition:
    id: int
    subject: str
    preheader: str
    lang: str
    status: str
    html: str
    text: str
    intro: str
    template: str
    topic_ids: list[int]
    topic_slugs: list[str]
    topic_names: list[str]
    created: str
    article_ids: list[int]
    sent_at: str | None = None
    variants: list[Variant] = field(default_factory=list)  # the main one first

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @property
    def languages(self) -> list[str]:
        return [v.lang for v in self.variants] or [self.lang]

    def variant(self, lang: str | None) -> Variant:
        """The variant of ``lang``; the main one for a language the edition lacks."""
        for found in self.variants:
            if found.lang == lang:
                return found
        if self.variants:
            return self.variants[0]
        return Variant(
            self.lang, self.subject, self.preheader, self.intro, self.html, self.text,
            self.article_ids,
        )  # fmt: skip

    def as_json(self) -> dict:
        return {
            "edition": self.id,
            "subject": self.subject,
            "preheader": self.preheader,
            "lang": self.lang,
            "status": self.status,
            "topics": self.topic_slugs,
            "topic_names": self.topic_names,
            "template": self.template,
            "created": self.created,
            "sent_at": self.sent_at,
            "article_ids": self.article_ids,
            "html_bytes": self.html_bytes,
            "text_bytes": len(self.text.encode("utf-8")),
            "languages": self.languages,
            "variants": [v.as_json() for v in self.variants],
        }


@dataclass(frozen=True)
class EditionSummary:
    id: int
    subject: str
    lang: str
    status: str
    created: str
    topics: list[str]  # slugs
    article_count: int
    html_bytes: int
    languages: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "edition": self.id,
            "subject": self.subject,
            "lang": self.lang,
            "languages": self.languages,
            "status": self.status,
            "created": self.created,
            "topics": self.topics,
            "articles": self.article_count,
            "html_bytes": self.html_bytes,
        }
