"""Bounce and complaint webhooks of sending providers: ``POST /hooks/ses`` (Amazon SES
through SNS, signature verified) and ``POST /hooks/postmark`` (HTTP basic auth).

Unauthenticated or forged posts get 401/403 and change nothing; after
``ratelimit.HOOK_FAILURES_PER_HOUR`` of them within an hour a client network gets 429,
without its posts being checked, until the hour has passed. A post of the wrong shape gets
400; the answers are JSON. The provider authenticated the post, so a report it makes may be
matched by the address it names (``vouched``), unlike one found in the bounce mailbox. A
post the provider retries is counted once (the report fingerprint is its event id).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from newsletter.delivery import bounces
from newsletter.delivery.bounces.sources import Incoming
from newsletter.delivery.bounces.webhooks import (
    Event,
    WebhookRefused,
    postmark_event,
    ses_event,
)
from newsletter.web import ratelimit
from newsletter.web.context import web

hooks = Blueprint("hooks", __name__)
MAX_HOOK_BODY = 256 * 1024  # SNS messages are at most 256 KB


def _body() -> bytes:
    request.max_content_length = MAX_HOOK_BODY
    return request.get_data(cache=False)


def _apply(event: Event, source: str) -> Response:
    w = web()
    items = [Incoming(event.label, reports=event.reports)]
    result = bounces.process(w.db(), w.settings, items, source, vouched=True)
    return jsonify(result.as_dict())


def _refused(exc: WebhookRefused) -> tuple[Response, int]:
    # The reason goes to the log; the poster learns only that it was refused.
    current_app.logger.warning("webhook refused: %s", exc)
    if exc.status in (401, 403):
        ratelimit.count_hook_auth_failure(web().db(), request.remote_addr or "")
    return jsonify({"error": "refused" if exc.status != 400 else "malformed"}), exc.status


def _event(read: Callable[[], Event]) -> Event | tuple[Response, int]:
    """The authenticated event, or the JSON answer that refuses the post."""
    if ratelimit.hook_auth_blocked(web().db(), request.remote_addr or ""):
        current_app.logger.warning("webhook refused: too many failed authentications")
        answer = jsonify({"error": "too many failed attempts; try again later"})
        answer.headers["Retry-After"] = "3600"
        return answer, 429
    try:
        return read()
    except WebhookRefused as exc:
        return _refused(exc)
    except RequestEntityTooLarge:
        return jsonify({"error": "too large"}), 413


@hooks.route("/hooks/ses", methods=["POST"])
def ses() -> Response | tuple[Response, int]:
    event = _event(lambda: ses_event(web().settings, _body()))
    if not isinstance(event, Event):
        return event
    if event.kind == "subscribe":
        # Confirming is a person's decision: the URL goes to the log, to be opened once.
        current_app.logger.warning(
            "SNS asks to confirm the subscription of this endpoint: open %s", event.subscribe_url
        )
        return jsonify({"subscription": "visit the SubscribeURL logged by the server"})
    return _apply(event, "ses")


@hooks.route("/hooks/postmark", methods=["POST"])
def postmark() -> Response | tuple[Response, int]:
    authorization = request.headers.get("Authorization")
    event = _event(lambda: postmark_event(web().settings, authorization, _body()))
    if not isinstance(event, Event):
        return event
    return _apply(event, "postmark")
