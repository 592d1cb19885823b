"""Language variants of an edition: which articles each language's readers get, and the
per-language ``--subject``/``--intro`` values.

A story may exist in several languages, linked by ``translation_of`` (a shared key, or the
key of the original). A variant shows each story in its own language where there is such a
version, else in the default language; a story in neither is left out of that variant,
unless the variant would have no article at all (then it shows every story as it is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from newsletter import i18n
from newsletter.config import LANGUAGES
from newsletter.content.articles import Article
from newsletter.errors import NewsletterError


@dataclass(frozen=True)
class PerLanguage:
    """A value given per language (``sv=...``), with the plain value as the fallback."""

    plain: str | None
    by_lang: Mapping[str, str]

    def get(self, lang: str, default_lang: str) -> tuple[str | None, str]:
        """(value, its language) for a variant: its own, else the plain or default one."""
        if lang in self.by_lang:
            return self.by_lang[lang], lang
        if self.plain is not None:
            return self.plain, default_lang
        if default_lang in self.by_lang:
            return self.by_lang[default_lang], default_lang
        return None, lang


def parse_per_language(values: Iterable[str] | None, option: str) -> PerLanguage:
    """``--subject "X"`` and ``--subject sv="Y"``: a ``L=`` prefix names a language."""
    plain: str | None = None
    by_lang: dict[str, str] = {}
    for value in values or []:
        lang, sep, rest = value.partition("=")
        if sep and lang.strip() in LANGUAGES:
            key = lang.strip()
            if key in by_lang:
                raise NewsletterError(f"{option} {key}= given twice")
            by_lang[key] = rest
        else:
            if plain is not None:
                raise NewsletterError(
                    f'{option} given twice without a language: write {option} sv="..."'
                )
            plain = value
    return PerLanguage(plain, by_lang)


def check_languages(langs: Iterable[str]) -> list[str]:
    """Known languages, each once, in the order given."""
    return list(dict.fromkeys(i18n.check_lang(lang) for lang in langs))


def _keys_linking(article: Article) -> set[str]:
    return {k for k in (article.guid, article.url, article.translation_of) if k}


def stories(found: Sequence[Article]) -> list[list[Article]]:
    """The articles grouped into stories (language versions of one text), in the order of
    each story's first article.

    Two articles are one story when they share a ``translation_of`` key, or one's
    ``translation_of`` is the other's key (guid or URL).
    """
    parent = list(range(len(found)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[str, int] = {}
    for index, article in enumerate(found):
        for key in sorted(_keys_linking(article)):
            if key in first_with:
                parent[root(index)] = root(first_with[key])
            else:
                first_with[key] = index
    groups: dict[int, list[Article]] = {}
    for index, article in enumerate(found):
        groups.setdefault(root(index), []).append(article)
    return list(groups.values())


def for_language(
    found: Sequence[Article], lang: str, default_lang: str, limit: int | None = None
) -> list[Article]:
    """The articles of ``lang``'s variant, newest story first."""
    grouped = stories(found)
    chosen: list[Article] = []
    for story in grouped:
        own = [a for a in story if a.language(default_lang) == lang]
        fallback = [a for a in story if a.language(default_lang) == default_lang]
        pick = own or fallback
        if pick:
            # Two versions in one language: the newest (a corrected re-post) wins.
            chosen.append(max(pick, key=_newest))
    if not chosen:
        # Only other languages' stories (a Swedish-only week, Finnish readers): better
        # those, each marked with its language, than no edition for these readers.
        chosen = [max(story, key=_newest) for story in grouped]
    chosen.sort(key=_newest, reverse=True)
    return chosen[:limit] if limit is not None else chosen


def _newest(article: Article) -> tuple:
    return (article.published, article.id)
