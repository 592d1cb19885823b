"""Bounce and complaint webhooks of sending providers: ``POST /hooks/ses`` (Amazon SES
through SNS, signature verified) and ``POST /hooks/postmark`` (HTTP basic auth).

Unauthenticated or forged posts get 401/403 and change nothing; a post the provider
retries is counted once (the report fingerprint is the provider's event id).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from newsletter.delivery import bounces
from newsletter.delivery.bounces.sources import Incoming
from newsletter.delivery.bounces.webhooks import (
    Event,
    WebhookRefused,
    postmark_event,
    ses_event,
)
from newsletter.web.context import web

hooks = Blueprint("hooks", __name__)
MAX_HOOK_BODY = 256 * 1024  # SNS messages are at most 256 KB


def _body() -> bytes:
    request.max_content_length = MAX_HOOK_BODY
    return request.get_data(cache=False)


def _apply(event: Event, source: str) -> Response:
    w = web()
    result = bounces.process(w.db(), w.settings, [Incoming(event.label, reports=event.reports)],
                             source)  # fmt: skip
    return jsonify(result.as_dict())


def _refused(exc: WebhookRefused) -> tuple[Response, int]:
    # The reason goes to the log; the poster learns only that it was refused.
    current_app.logger.warning("webhook refused: %s", exc)
    return jsonify({"error": "refused"}), exc.status


@hooks.route("/hooks/ses", methods=["POST"])
def ses() -> Response | tuple[Response, int]:
    try:
        event = ses_event(web().settings, _body())
    except WebhookRefused as exc:
        return _refused(exc)
    if event.kind == "subscribe":
        # Confirming is a person's decision: the URL goes to the log, to be opened once.
        current_app.logger.warning(
            "SNS asks to confirm the subscription of this endpoint: open %s", event.subscribe_url
        )
        return jsonify({"subscription": "visit the SubscribeURL logged by the server"})
    return _apply(event, "ses")


@hooks.route("/hooks/postmark", methods=["POST"])
def postmark() -> Response | tuple[Response, int]:
    try:
        event = postmark_event(web().settings, request.headers.get("Authorization"), _body())
    except WebhookRefused as exc:
        return _refused(exc)
    return _apply(event, "postmark")
