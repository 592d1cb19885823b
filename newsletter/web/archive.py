"""Public pages: each sent edition's web version (``/e/<token>``) and each topic's archive
of them with an Atom feed (``/archive/<topic>``, ``/archive/<topic>/feed.atom``).

Nothing here is personal: the web version is rendered without per-recipient links, and the
token in its address is the same for every reader. Drafts and topics kept out of the
archive answer "not found" like any unknown page.
"""

from __future__ import annotations

from xml.etree import ElementTree

from flask import Blueprint, Response, abort, g, url_for

from newsletter import dates
from newsletter.clock import from_iso, now_iso
from newsletter.content import archive
from newsletter.errors import InvalidToken, NotFound
from newsletter.web.context import page, request_lang, web

bp = Blueprint("archive", __name__)

ATOM = "http://www.w3.org/2005/Atom"
# The web version is an email's HTML: its styles are inline and its images come from the
# articles' own sites, which the pages' strict default policy would block.
WEB_VERSION_POLICY = "; ".join(
    [
        "default-src 'none'",
        "img-src https: http: data:",
        "style-src 'unsafe-inline'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


def _absolute(path: str) -> str:
    return web().settings.base_url.rstrip("/") + path


@bp.get("/e/<token>")
def web_version(token: str) -> Response:
    w = web()
    try:
        edition_id = archive.edition_of_token(w.keys, token)
        # The variant of the reader's language (?lang= from the mail's link, else the browser's).
        found = archive.web_version(w.db(), w.settings, edition_id, request_lang())
    except (InvalidToken, NotFound):
        abort(404)
    g.content_security_policy = WEB_VERSION_POLICY
    g.public_page = True
    response = Response(found.html, mimetype="text/html")
    if not found.listed:  # reachable by the mail's link only: keep it out of search engines
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


@bp.get("/archive/<slug>")
def topic_archive(slug: str) -> tuple[str, int]:
    w = web()
    db = w.db()
    try:
        topic = archive.archived_topic(db, slug)
    except NotFound:
        abort(404)
    g.lang = request_lang()
    g.public_page = True
    items = [
        {
            "url": _absolute(archive.web_path(w.key, e.id)),
            "subject": e.subject,
            "preheader": e.preheader,
            "lang": e.lang,
            "date": dates.format_date(from_iso(e.sent_at), g.lang, w.settings.tz),
        }
        for e in archive.editions_of(db, w.key, topic.id)
    ]
    return page(
        "archive.html",
        topic=topic,
        items=items,
        feed_url=url_for("archive.feed", slug=topic.slug),
        subscribe_url=url_for("views.subscribe", topic=topic.slug, lang=g.lang),
    )


@bp.get("/archive/<slug>/feed.atom")
def feed(slug: str) -> Response:
    w = web()
    db = w.db()
    try:
        topic = archive.archived_topic(db, slug)
    except NotFound:
        abort(404)
    g.public_page = True
    editions = archive.editions_of(db, w.key, topic.id, limit=50)
    page_url = _absolute(url_for("archive.topic_archive", slug=topic.slug))
    root = ElementTree.Element("feed", xmlns=ATOM)
    _text(root, "id", page_url)
    _text(root, "title", f"{w.settings.org_name}: {topic.name}")
    _text(root, "updated", _rfc3339(editions[0].sent_at if editions else now_iso()))
    author = ElementTree.SubElement(root, "author")
    _text(author, "name", w.settings.org_name)
    ElementTree.SubElement(root, "link", rel="alternate", type="text/html", href=page_url)
    ElementTree.SubElement(
        root,
        "link",
        rel="self",
        type="application/atom+xml",
        href=_absolute(url_for("archive.feed", slug=topic.slug)),
    )
    for edition in editions:
        entry = ElementTree.SubElement(root, "entry")
        url = _absolute(archive.web_path(w.key, edition.id))
        _text(entry, "id", url)
        _text(entry, "title", edition.subject)
        _text(entry, "updated", _rfc3339(edition.sent_at))
        ElementTree.SubElement(entry, "link", rel="alternate", type="text/html", href=url)
        if edition.preheader:
            _text(entry, "summary", edition.preheader)
    body = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, mimetype="application/atom+xml")


def _text(parent: ElementTree.Element, tag: str, value: str) -> None:
    ElementTree.SubElement(parent, tag).text = value


def _rfc3339(stamp: str) -> str:
    return from_iso(stamp).isoformat(timespec="seconds")
