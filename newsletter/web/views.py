"""The pages: sign-up, confirmation, unsubscribe, preferences. Thin: read the request,
call the core (``confirmations``, ``web.actions``), render.

A GET never changes anything (mail scanners follow links). Every form carries the CSRF
token, except the RFC 8058 one-click POST, which mail providers send without cookies.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from newsletter import links
from newsletter.audience import confirmations, subscribers
from newsletter.config import LANGUAGES
from newsletter.content.topics import all_topics, localize
from newsletter.errors import InvalidEmail, InvalidToken
from newsletter.web import actions, ratelimit
from newsletter.web.context import csrf_ok, message, page, request_lang, web

bp = Blueprint("views", __name__)
Page = tuple[str, int]

ONE_CLICK = b"List-Unsubscribe=One-Click"
MAX_EMAIL = 320
MAX_NAME = 200


def _bad_link() -> Page:
    return message("bad_link_title", "bad_link", status=404)


def _manage_url(subscriber_id: int) -> str:
    token = links.preferences_token(web().key, subscriber_id)
    return url_for("views.preferences", token=token)


@bp.get("/")
def index() -> BaseResponse:
    # Only known parameters: url_for would treat '_external' and friends as its own.
    kept = {k: request.args[k] for k in ("lang", "topic") if request.args.get(k)}
    return redirect(url_for("views.subscribe", **kept))


@bp.get("/favicon.ico")
def favicon() -> Response:
    return Response(status=204)  # browsers ask for it; an empty answer keeps logs quiet


@bp.get("/healthz")
def health() -> Response:
    web().db().execute("SELECT 1").fetchone()
    return Response("ok\n", mimetype="text/plain")


# Sign-up -----------------------------------------------------------------------------


@bp.route("/subscribe", methods=["GET", "POST"])
def subscribe() -> Page:
    w = web()
    db = w.db()
    topics = all_topics(db, listed_only=True)  # hidden topics can be neither seen nor posted
    if request.method == "GET":
        g.lang = request_lang()
        chosen = {request.args.get("topic", "")}
        return page(
            "subscribe.html", topics=localize(topics, g.lang), chosen=chosen, values={}, errors=[]
        )

    origin, referer = request.headers.get("Origin"), request.headers.get("Referer")
    if not (csrf_ok() or w.csrf.allowed_embed(origin, referer)):
        abort(403)
    form = request.form
    g.lang = request_lang(request.args.get("lang"), form.get("lang"))
    mail_lang = form.get("lang") if form.get("lang") in LANGUAGES else g.lang
    by_slug = {t.slug: t for t in topics}
    chosen = [by_slug[s] for s in dict.fromkeys(form.getlist("topics")) if s in by_slug]
    raw_email = form.get("email", "")[:MAX_EMAIL]
    name = form.get("name", "")[:MAX_NAME]
    errors = []
    address = ""
    try:
        address = subscribers.normalize_email(raw_email)
    except InvalidEmail:
        errors.append("error_email")
    if not chosen:
        errors.append("error_topics")
    if errors:
        values = {"email": raw_email, "name": name, "lang": mail_lang}
        chosen_slugs = {t.slug for t in chosen}
        shown = localize(topics, g.lang)
        return page(
            "subscribe.html", 400, topics=shown, chosen=chosen_slugs, values=values, errors=errors
        )

    limit = w.settings.signup_limit_per_hour
    if not ratelimit.allow_ip(db, request.remote_addr or "", limit):
        abort(429)
    # Beyond the per-address limit the answer is the same page, and nothing happens.
    if ratelimit.allow_email(db, address, limit):
        result = confirmations.sign_up(
            db,
            w.settings,
            email=address,
            name=name,
            lang=mail_lang,
            topic_ids=[t.id for t in chosen],
        )
        if result.needs_mail and result.subscriber_id is not None:
            w.outbox.submit(result.subscriber_id, mail_lang)
    return message(
        "check_inbox_title",
        "check_inbox",
        values={"days": w.settings.confirm_days},
        extra_key="check_inbox_spam",
    )


# Confirmation ------------------------------------------------------------------------


def _token_problem(token: str) -> Page:
    w = web()
    if confirmations.is_expired(w.db(), w.settings, token):
        g.lang = request_lang()
        return message(
            "expired_title",
            "expired",
            status=400,
            link=(url_for("views.subscribe"), "subscribe_title"),
        )
    return _bad_link()


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Page:
    w = web()
    db = w.db()
    try:
        found = confirmations.pending(db, w.settings, token)
    except InvalidToken:
        return _token_problem(token)
    g.lang = request_lang(found.lang)
    manage = (_manage_url(found.subscriber_id), "manage")
    if request.method == "GET":
        if not found.topics:
            return message("confirm_title", "confirm_nothing", link=manage)
        return page("confirm.html", topics=localize(found.topics, g.lang))

    if not csrf_ok():
        abort(403)
    try:
        confirmations.confirm(db, w.settings, token)
    except InvalidToken:
        return _token_problem(token)
    receiving = [
        c.name for c in actions.load_preferences(db, found.subscriber_id).topics if c.receiving
    ]
    return message("confirmed_title", "confirmed", items=receiving, link=manage)


# Unsubscribe -------------------------------------------------------------------------


def _is_one_click() -> bool:
    """RFC 8058: the body is ``List-Unsubscribe=One-Click``, form-encoded (or multipart)."""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.get("List-Unsubscribe") == "One-Click"
    return request.get_data(cache=False).strip() == ONE_CLICK


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> Page:
    w = web()
    db = w.db()
    try:
        link = actions.read_unsubscribe(db, w.keys, token)
    except InvalidToken:
        return _bad_link()
    g.lang = request_lang(link.lang)
    manage = (_manage_url(link.subscriber_id), "manage") if link.lang else None
    topic = {"topic": link.topic_name or ""}

    if request.method == "POST":
        if _is_one_click():
            actions.unsubscribe(db, w.keys, token, "one-click")
            body = "unsubscribed" if link.topic_name else "unsubscribed_any"
            return message("unsubscribed_title", body, values=topic)
        if not csrf_ok():
            abort(403)
        link = actions.unsubscribe(db, w.keys, token, "web")  # the link as it reads now

    if link.status in ("confirmed", "unconfirmed"):
        return page("unsubscribe.html", topic=link.topic_name or "", manage=manage)
    if link.status == "unsubscribed":
        body = "unsubscribed" if link.topic_name else "unsubscribed_any"
        return message("unsubscribed_title", body, values=topic, link=manage)
    return message("unsubscribe_title", "not_subscribed", link=manage)


# Preferences and erasure -------------------------------------------------------------


@bp.route("/p/<token>", methods=["GET", "POST"])
def preferences(token: str) -> Page:
    w = web()
    db = w.db()
    try:
        subscriber_id = actions.preferences_subscriber(db, w.keys, token)
    except InvalidToken:
        return _bad_link()
    notice = None
    if request.method == "POST":
        if not csrf_ok():
            abort(403)
        if request.form.get("action") == "unsubscribe_all":
            actions.unsubscribe_all(db, subscriber_id)
            notice = "prefs_all_done"
        else:
            current = actions.load_preferences(db, subscriber_id)
            lang = request.form.get("lang")
            slugs = set(request.form.getlist("topics"))
            actions.save_preferences(
                db,
                subscriber_id,
                lang=lang if lang in LANGUAGES else current.lang,
                topic_ids={c.id for c in current.topics if c.slug in slugs},
            )
            notice = "prefs_saved"
    prefs = actions.load_preferences(db, subscriber_id)
    g.lang = prefs.lang
    return page(
        "preferences.html",
        prefs=prefs,
        notice=notice,
        erase_url=url_for("views.erase", token=token),
    )


@bp.route("/p/<token>/erase", methods=["GET", "POST"])
def erase(token: str) -> Page:
    w = web()
    db = w.db()
    try:
        subscriber_id = actions.preferences_subscriber(db, w.keys, token)
    except InvalidToken:
        return _bad_link()
    g.lang = actions.load_preferences(db, subscriber_id).lang
    if request.method == "GET":
        return page("erase.html", back_url=url_for("views.preferences", token=token))
    if not csrf_ok():
        abort(403)
    actions.erase(db, subscriber_id, source="web")
    return message("erased_title", "erased")
