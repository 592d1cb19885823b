"""A folder of Markdown files, one article each, with YAML front matter.

    ---
    title: Palautteen avulla parempaa lastensuojelua
    url: https://www.example.fi/blogi/palaute
    published: 2025-08-11T09:00:00+03:00
    category: Blogi
    topics: [Vaikuttavuus]
    image: https://www.example.fi/kuvat/palaute.jpg
    image_alt: Nuori ja työntekijä keskustelevat
    ---
    The first paragraph is the summary when the front matter has none.

The title may also come from the first ``# heading``, the image and its alt text from the
first image in the body. Hugo's ``translationKey`` links a story's language versions. The
YAML is read safely, with limits on its size and on aliases (no "billion laughs").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from markdown_it import MarkdownIt

from newsletter.config import Settings
from newsletter.content.articles import ArticleIn
from newsletter.content.intake.fields import ItemError
from newsletter.content.intake.problems import Problem, Problems
from newsletter.content.intake.records import article_from_record, field_key, value
from newsletter.content.intake.text import decode_text, html_to_text, one_line

FENCES = ("---", "...")


MAX_FRONT_MATTER = 64 * 1024  # bytes of YAML; a front matter is a few lines
MAX_ALIASES = 20  # YAML aliases allowed; "billion laughs" needs many
MAX_FILE = 5 * 1024 * 1024


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses alias bombs: each alias is counted as it is composed."""

    aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ValueError(f"front matter uses more than {MAX_ALIASES} YAML aliases")
        return super().compose_node(parent, index)  # type: ignore[arg-type]


def read_folder(folder: Path, settings: Settings, problems: Problems) -> list[ArticleIn]:
    files = sorted(
        path
        for path in folder.rglob("*.md")
        # Hidden folders (.git) and drafts kept as _name.md are not articles.
        if path.is_file()
        and not any(part.startswith((".", "_")) for part in path.relative_to(folder).parts)
    )
    if not files:
        raise ValueError("no .md files in this folder")
    articles = []
    for position, path in enumerate(files, start=1):
        name = str(path.relative_to(folder))
        try:
            articles.append(
                read_file(path, settings, problems.warner(position, None, name, "file"))
            )
        except (ValueError, OSError) as exc:
            problems.skip(Problem(one_line(exc), position, None, name, "file"))
    return articles


def read_file(path: Path, settings: Settings, warn: Callable[[str], None]) -> ArticleIn:
    """One article; errors (ValueError) do not repeat the file name."""
    if path.stat().st_size > MAX_FILE:
        raise ValueError(f"larger than {MAX_FILE // (1024 * 1024)} MB")
    meta, body = split_front_matter(decode_text(path.read_bytes(), path.name))
    meta = {field_key(key): value for key, value in meta.items()}
    found = read_body(body[:MAX_FILE])
    if found.image and value(meta, "image") is None:
        meta["image"], meta["image_alt"] = found.image, found.image_alt or None
    try:
        article = article_from_record(
            meta, settings, warn, body_summary=found.summary, body_title=found.title
        )
    except ItemError as exc:
        raise ValueError(str(exc)) from None
    article.source = str(path)
    return article


def split_front_matter(text: str) -> tuple[dict, str]:
    """The YAML mapping between the opening ``---`` and the next fence, and the body after it."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ValueError("no YAML front matter (the file must start with ---)")
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() in FENCES:
            head, body = "".join(lines[1:index]), "".join(lines[index + 1 :])
            break
    else:
        raise ValueError("front matter is not closed with ---")
    if len(head.encode("utf-8", "replace")) > MAX_FRONT_MATTER:
        raise ValueError(f"front matter larger than {MAX_FRONT_MATTER // 1024} KB")
    try:
        meta = yaml.load(head, Loader=_Loader) or {}  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML front matter: {one_line(exc)[:300]}") from None
    except RecursionError:
        raise ValueError("invalid YAML front matter: nested too deeply") from None
    if not isinstance(meta, dict):
        raise ValueError("front matter must be a mapping of keys to values")
    return meta, body


@dataclass
class Body:
    """What the Markdown body offers when the front matter is silent."""

    title: str = ""
    summary: str = ""
    image: str = ""
    image_alt: str = ""


def read_body(text: str) -> Body:
    """The first level-1 heading, the first paragraph of text and the first image."""
    md = MarkdownIt("commonmark")
    tokens = md.parse(text)
    body = Body()
    for opening, inline in itertools.pairwise(tokens):
        if inline.type != "inline":
            continue
        if opening.type == "heading_open" and opening.tag == "h1":
            body.title = body.title or html_to_text(md.renderInline(inline.content))
        elif opening.type == "paragraph_open":
            images = [c for c in inline.children or [] if c.type == "image"]
            if images and not body.image:
                body.image = str(images[0].attrs.get("src") or "")
                body.image_alt = html_to_text(md.renderInline(images[0].content))
            # A paragraph that is only an image is not the summary.
            words = [c for c in inline.children or [] if c.type == "text" and c.content.strip()]
            if words and not body.summary:
                body.summary = html_to_text(md.renderInline(inline.content))
    return body
