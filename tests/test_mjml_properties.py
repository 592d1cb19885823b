"""Properties of the MJML check: valid trees pass (and compile), every planted mistake is
found on its own line; and whatever text staff or feeds put in, it never becomes markup."""

from __future__ import annotations

import string
from datetime import datetime
from pathlib import Path

from build_helpers import HELSINKI, TOPIC_SLUG, add_articles, sample_articles
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.content import contacts, editions, mjml_check, render

CONTENT = ["mj-text", "mj-button", "mj-image", "mj-divider", "mj-spacer"]
ENDING_CONTENT = {"mj-text", "mj-button"}
ATTRS = {
    tag: sorted(mjml_check.ATTRIBUTES[tag] - {"css-class"})
    for tag in ["mj-section", "mj-column", *CONTENT]
}
VALUE = st.sampled_from(["4px", "#112233", "50%", "left", "https://www.example.fi/x.png"])


@st.composite
def element(draw, tag: str) -> tuple[str, list[str]]:
    names = draw(st.lists(st.sampled_from(ATTRS[tag]), max_size=3, unique=True))
    attrs = "".join(f' {n}="{draw(VALUE)}"' for n in names)
    return tag, attrs


@st.composite
def tree(draw) -> list[str]:
    """The lines of a valid MJML document, one tag per line."""
    lines = ["<mjml>", "<mj-body>"]
    for _ in range(draw(st.integers(1, 3))):
        _, attrs = draw(element("mj-section"))
        lines.append(f"<mj-section{attrs}>")
        for _ in range(draw(st.integers(1, 3))):
            _, attrs = draw(element("mj-column"))
            lines.append(f"<mj-column{attrs}>")
            for tag in draw(st.lists(st.sampled_from(CONTENT), min_size=1, max_size=3)):
                _, attrs = draw(element(tag))
                if tag in ENDING_CONTENT:
                    lines.append(f"<{tag}{attrs}><p>teksti <b>x</b><br></p></{tag}>")
                else:
                    lines.append(f"<{tag}{attrs} />")
            lines.append("</mj-column>")
        lines.append("</mj-section>")
    lines += ["</mj-body>", "</mjml>"]
    return lines


def _lines(texts: list[str]) -> list[mjml_check.Line]:
    return [mjml_check.Line(t, "t.mjml.j2", n) for n, t in enumerate(texts, start=1)]


@settings(max_examples=60, deadline=None)
@given(tree())
def test_valid_trees_pass_and_compile(lines: list[str]) -> None:
    assert mjml_check.problems(_lines(lines)) == []
    html = render.compile_mjml("\n".join(lines), template="t")
    assert "<body" in html


def _column_lines(lines: list[str]) -> list[int]:
    return [i for i, t in enumerate(lines) if t.startswith("<mj-column")]


@settings(max_examples=60, deadline=None)
@given(tree(), st.data())
def test_an_unknown_tag_is_found_on_its_line(lines: list[str], data) -> None:
    name = "mj-" + data.draw(st.text(string.ascii_lowercase, min_size=2, max_size=8))
    if name in mjml_check.KNOWN:
        return
    at = data.draw(st.sampled_from(_column_lines(lines))) + 1
    lines = [*lines[:at], f"<{name} />", *lines[at:]]
    found = mjml_check.problems(_lines(lines))
    assert (
        found[0] == f"template t.mjml.j2, line {at + 1}: invalid MJML: <{name}> is not an MJML tag"
    )


@settings(max_examples=60, deadline=None)
@given(tree(), st.data())
def test_content_outside_a_column_is_found_on_its_line(lines: list[str], data) -> None:
    sections = [i for i, t in enumerate(lines) if t.startswith("<mj-section")]
    at = data.draw(st.sampled_from(sections)) + 1
    tag = data.draw(st.sampled_from(CONTENT))
    lines = [*lines[:at], f"<{tag} />", *lines[at:]]
    found = mjml_check.problems(_lines(lines))
    assert found[0].startswith(
        f"template t.mjml.j2, line {at + 1}: invalid MJML: <{tag}> cannot be inside <mj-section>"
    )


@settings(max_examples=60, deadline=None)
@given(tree(), st.data())
def test_an_unknown_attribute_is_found_on_its_line(lines: list[str], data) -> None:
    at = data.draw(st.sampled_from(_column_lines(lines)))
    name = data.draw(st.text(string.ascii_lowercase + "-", min_size=3, max_size=12))
    if name in mjml_check.ATTRIBUTES["mj-column"] or name == "mj-class" or name.startswith("-"):
        return
    lines = [
        *lines[:at],
        lines[at].replace("<mj-column", f'<mj-column {name}="1"', 1),
        *lines[at + 1 :],
    ]
    found = mjml_check.problems(_lines(lines))
    assert (
        f"template t.mjml.j2, line {at + 1}: invalid MJML: <mj-column> has no attribute {name!r}"
        in found
    )


TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=TEXT, title=TEXT)
def test_contact_text_never_becomes_markup(
    db, settings, workdir: Path, name: str, title: str
) -> None:
    if not db.execute("SELECT count(*) FROM articles").fetchone()[0]:
        add_articles(db, sample_articles(datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)))
    db.execute("DELETE FROM topic_contacts")
    hostile = f"<b onclick=x>{name}</b>"
    contacts.add(db, TOPIC_SLUG, name=hostile, title=title)
    html = editions.build(
        db,
        settings,
        topics=[TOPIC_SLUG],
        since="2025-08-01",
        until=None,
        limit=None,
        subject="s",
        intro=None,
        lang="fi",
        template=None,
        out=workdir / "editions",
    ).html_path.read_text(encoding="utf-8")
    assert "<b onclick" not in html and "&lt;b onclick=x&gt;" in html
