"""MJML validation of a template before it is compiled.

mjml-python accepts what the official ``mjml`` refuses (``<mj-colum>``, an ``mj-text`` right
inside ``mj-section``, made-up attributes) and the layout then breaks without a word. This
checks the template files themselves, with their includes expanded and the Jinja syntax
blanked out, so an error names the file and line a person has to edit. Both branches of an
``{% if %}`` are checked, which is what a template author wants: either may render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import NewsletterError


class TemplateError(NewsletterError):
    """A template is missing, does not compile, or produces invalid MJML."""


_PADDING = {"padding", "padding-top", "padding-right", "padding-bottom", "padding-left"}
_BORDER = {"border", "border-top", "border-right", "border-bottom", "border-left", "border-radius"}
_FONT = {
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "line-height",
    "letter-spacing",
    "text-decoration",
    "text-transform",
    "color",
}
_LINK = {"href", "rel", "target", "title", "name"}
_BACKGROUND = {
    "background-color",
    "background-position",
    "background-position-x",
    "background-position-y",
    "background-repeat",
    "background-size",
    "background-url",
}
_COLUMN_CONTENT = {
    "mj-accordion",
    "mj-button",
    "mj-carousel",
    "mj-divider",
    "mj-image",
    "mj-navbar",
    "mj-raw",
    "mj-social",
    "mj-spacer",
    "mj-table",
    "mj-text",
}

# Which children each tag takes. A tag missing here takes none.
CHILDREN: dict[str, set[str]] = {
    "mjml": {"mj-head", "mj-body"},
    "mj-head": {
        "mj-attributes",
        "mj-breakpoint",
        "mj-font",
        "mj-html-attributes",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-raw",
    },
    "mj-html-attributes": {"mj-selector"},
    "mj-selector": {"mj-html-attribute"},
    "mj-body": {"mj-section", "mj-wrapper", "mj-hero", "mj-raw"},
    "mj-wrapper": {"mj-section", "mj-hero", "mj-raw"},
    "mj-section": {"mj-column", "mj-group", "mj-raw"},
    "mj-group": {"mj-column", "mj-raw"},
    "mj-column": _COLUMN_CONTENT,
    "mj-hero": _COLUMN_CONTENT,
    "mj-accordion": {"mj-accordion-element", "mj-raw"},
    "mj-accordion-element": {"mj-accordion-title", "mj-accordion-text", "mj-raw"},
    "mj-carousel": {"mj-carousel-image"},
    "mj-navbar": {"mj-navbar-link", "mj-raw"},
    "mj-social": {"mj-social-element", "mj-raw"},
}

# Attributes of the common tags; a known tag not listed here takes any attribute.
ATTRIBUTES: dict[str, set[str]] = {
    "mjml": {"lang", "dir", "owa"},
    "mj-body": {"width", "background-color", "css-class"},
    "mj-section": _PADDING
    | _BORDER
    | _BACKGROUND
    | {"css-class", "direction", "full-width", "text-align"},
    "mj-wrapper": _PADDING
    | _BORDER
    | _BACKGROUND
    | {"css-class", "direction", "full-width", "text-align", "gap"},
    "mj-column": _PADDING
    | _BORDER
    | {
        "background-color",
        "inner-background-color",
        "inner-border",
        "inner-border-top",
        "inner-border-right",
        "inner-border-bottom",
        "inner-border-left",
        "inner-border-radius",
        "width",
        "vertical-align",
        "css-class",
        "direction",
    },
    "mj-group": {"width", "vertical-align", "background-color", "direction", "css-class"},
    "mj-text": _PADDING | _FONT | {"align", "container-background-color", "css-class", "height"},
    "mj-button": _PADDING
    | _BORDER
    | _FONT
    | _LINK
    | {
        "align",
        "background-color",
        "container-background-color",
        "css-class",
        "height",
        "inner-padding",
        "text-align",
        "vertical-align",
        "width",
    },
    "mj-image": _PADDING
    | _BORDER
    | _LINK
    | {
        "align",
        "alt",
        "container-background-color",
        "css-class",
        "fluid-on-mobile",
        "height",
        "sizes",
        "src",
        "srcset",
        "usemap",
        "width",
    },
    "mj-divider": _PADDING
    | {"align", "border-color", "border-style", "border-width", "container-background-color"}
    | {"css-class", "width"},
    "mj-spacer": _PADDING | {"container-background-color", "css-class", "height"},
    "mj-table": _PADDING
    | _FONT
    | {"align", "border", "cellpadding", "cellspacing", "container-background-color"}
    | {"css-class", "role", "table-layout", "width"},
    "mj-raw": {"position"},
    "mj-title": set(),
    "mj-preview": set(),
    "mj-style": {"inline"},
    "mj-font": {"name", "href"},
    "mj-breakpoint": {"width"},
    "mj-attributes": set(),
    "mj-include": {"path", "type", "css-inline"},
}

KNOWN = (
    set(CHILDREN)
    | set(ATTRIBUTES)
    | {c for children in CHILDREN.values() for c in children}
    | {"mj-all", "mj-class", "mj-include", "mj-carousel-image", "mj-html-attribute"}
)
# Tags whose content is HTML (or CSS/text), not more MJML.
ENDING = {
    "mj-text",
    "mj-button",
    "mj-raw",
    "mj-table",
    "mj-navbar-link",
    "mj-accordion-title",
    "mj-accordion-text",
    "mj-social-element",
    "mj-style",
    "mj-title",
    "mj-preview",
    "mj-html-attribute",
}

_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_INCLUDE = re.compile(r"\{%-?\s*include\s+[\"']([^\"']+)[\"'][^%]*?-?%\}")
_STATEMENT = re.compile(r"\{%.*?%\}", re.S)
_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.S)
_MARK = "\x00"
_TAG = re.compile(r"<(/?)((?:mj-[a-zA-Z0-9-]*)|mjml)\b((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)(/?)>")
_ATTRIBUTE = re.compile(r"([^\s=/\"']+)(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")
_XML_COMMENT = re.compile(r"<!--.*?-->", re.S)


@dataclass(frozen=True)
class Line:
    text: str
    file: str  # shown in errors: the template's name relative to its folder
    number: int


def _blank(match: re.Match[str], keep: str = "") -> str:
    """Replace Jinja syntax by ``keep`` plus its newlines, so line numbers stay true."""
    return keep + "\n" * match.group(0).count("\n")


def _find(search: tuple[Path, ...], name: str) -> Path | None:
    return next((folder / name for folder in search if (folder / name).is_file()), None)


def expand(search: tuple[Path, ...], name: str, depth: int = 0) -> list[Line]:
    """The template's lines with literal includes inlined and Jinja syntax blanked out."""
    path = _find(search, name)
    if path is None or depth > 20:
        return []  # Jinja reports a missing include itself, with its own message
    source = path.read_text(encoding="utf-8")
    source = _COMMENT.sub(_blank, source)
    source = _INCLUDE.sub(lambda m: f"{_MARK}{m.group(1)}{_MARK}", source)
    source = _STATEMENT.sub(_blank, source)
    source = _EXPRESSION.sub(lambda m: _blank(m, "x"), source)
    lines: list[Line] = []
    for number, text in enumerate(source.splitlines(), start=1):
        parts = text.split(_MARK)
        # parts alternate: text, include name, text, include name, ...
        for index, part in enumerate(parts):
            if index % 2:
                lines.extend(expand(search, part, depth + 1))
            elif part.strip():
                lines.append(Line(part, name, number))
    return lines


def problems(lines: list[Line]) -> list[str]:
    """Every MJML error of the expanded template: ``template F, line N: invalid MJML: ...``."""
    found: list[str] = []
    stack: list[tuple[str, str]] = []  # open tags and where they were opened
    skipping: str | None = None  # inside an ending tag: its content is HTML
    for line in lines:
        text = _XML_COMMENT.sub("", line.text)
        for match in _TAG.finditer(text):
            closing, tag, raw_attrs, self_closing = match.groups()
            tag = tag.lower()
            where = f"template {line.file}, line {line.number}"
            if skipping:
                if closing and tag == skipping:
                    skipping = None
                    stack.pop()
                continue
            if closing:
                if not stack:
                    found.append(f"{where}: invalid MJML: </{tag}> closes nothing open")
                elif stack[-1][0] != tag:
                    open_tag, opened = stack[-1]
                    found.append(
                        f"{where}: invalid MJML: </{tag}> while <{open_tag}> ({opened}) is"
                        " still open"
                    )
                    return found  # everything after this would be reported wrongly
                else:
                    stack.pop()
                continue
            in_attributes = bool(stack) and stack[-1][0] == "mj-attributes"
            found.extend(
                f"{where}: invalid MJML: {problem}"
                for problem in _check_tag(
                    tag, raw_attrs, stack[-1][0] if stack else None, in_attributes
                )
            )
            if not self_closing:
                stack.append((tag, f"line {line.number}"))
                if tag in ENDING:
                    skipping = tag
    if stack and not found:
        open_tag, opened = stack[-1]
        found.append(
            f"template {lines[-1].file}, {opened}: invalid MJML: <{open_tag}> is never closed"
        )
    return found


def _check_tag(tag: str, raw_attrs: str, parent: str | None, in_attributes: bool) -> list[str]:
    if tag not in KNOWN:
        return [f"<{tag}> is not an MJML tag"]
    errors: list[str] = []
    if in_attributes:
        pass  # defaults for any tag
    elif parent is None:
        if tag not in ("mjml", "mj-include"):
            errors.append(f"<{tag}> must be inside <mjml>")
    elif tag != "mj-include" and tag not in CHILDREN.get(parent, set()):
        allowed = ", ".join(f"<{p}>" for p, kids in CHILDREN.items() if tag in kids)
        hint = f" (it belongs in {allowed})" if allowed else ""
        errors.append(f"<{tag}> cannot be inside <{parent}>{hint}")
    allowed_attrs = ATTRIBUTES.get(tag)
    if allowed_attrs is not None:
        allowed_attrs = allowed_attrs | {"mj-class"}
        for name in _ATTRIBUTE.findall(raw_attrs):
            if name.lower() not in allowed_attrs:
                errors.append(f"<{tag}> has no attribute {name!r}")
    return errors


def check_template(search: tuple[Path, ...], name: str) -> None:
    """Raise TemplateError naming the file and line of each MJML mistake (the first few)."""
    found = problems(expand(search, name))
    if not found:
        return
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    raise TemplateError("; ".join(found[:3]) + more)
