"""Provider webhooks: Amazon SES notifications through SNS, and Postmark.

Neither is trusted unless it proves where it came from. An SNS message is signed by AWS:
its signature is verified against the SNS signing certificate configured in
``bounces.ses_certificate`` (downloaded once from the ``SigningCertURL``; never fetched
here, so a forged message cannot point us at a certificate of its own choosing), and it
must come from the topic in ``bounces.ses_topic_arn``: the certificate signs every AWS
account's topics, so without the topic a stranger's own topic would pass. Postmark
posts with the HTTP basic-auth credentials put into the webhook URL. Every event is stored
under the provider's own event id, so a retried webhook counts once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from newsletter.config import Settings
from newsletter.delivery.bounces.reports import Report, fingerprint, is_recipient_failure, scrub
from newsletter.errors import NewsletterError


class WebhookRefused(NewsletterError):
    """A post that is not authentic or not understood; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Event:
    kind: str  # "reports" | "subscribe" (SNS subscription to confirm) | "ignored"
    reports: list[Report]
    label: str = ""
    subscribe_url: str = ""


# --- Amazon SES through SNS -----------------------------------------------------------------

# The fields each SNS message type signs, in this order (AWS "Verifying the signatures of
# Amazon SNS messages").
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED["UnsubscribeConfirmation"] = _SIGNED["SubscriptionConfirmation"]


@cache
def _certificate(path: Path, mtime: float):  # type: ignore[no-untyped-def]
    # Cached per file version: editing the file (a new certificate) is read at once.
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).public_key()


def sns_string_to_sign(message: dict) -> bytes:
    fields = _SIGNED.get(str(message.get("Type")))
    if fields is None:
        raise WebhookRefused(f"unknown SNS message type {message.get('Type')!r}", 400)
    lines = []
    for name in fields:
        if name == "Subject" and "Subject" not in message:
            continue  # signed only when present
        lines += [name, str(message.get(name, ""))]
    return ("\n".join(lines) + "\n").encode("utf-8")


def check_ses_settings(settings: Settings) -> None:
    """Refuse a certificate without a topic: every AWS account's SNS messages are signed
    with the same regional certificate, so the signature alone proves only "some SNS topic",
    and anyone can publish an SES-shaped complaint to a topic of their own."""
    if settings.ses_certificate is not None and not settings.ses_topic_arn:
        raise WebhookRefused(
            "bounces.ses_certificate is set but bounces.ses_topic_arn is not: set it to the"
            " ARN of your SES notification topic (any AWS account's topic is signed by the"
            " same certificate)"
        )


def verify_sns(settings: Settings, message: dict) -> None:
    """Raise WebhookRefused unless ``message`` is signed by the configured SNS certificate
    and comes from the configured topic."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    check_ses_settings(settings)
    path = settings.ses_certificate
    if path is None:
        raise WebhookRefused("SES webhooks are off: set bounces.ses_certificate")
    if message.get("TopicArn") != settings.ses_topic_arn:
        raise WebhookRefused("not the configured SNS topic (bounces.ses_topic_arn)")
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise WebhookRefused("unknown SNS SignatureVersion", 400)
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        key = _certificate(Path(path), Path(path).stat().st_mtime)
    except binascii.Error:
        raise WebhookRefused("malformed SNS signature", 400) from None
    except (OSError, ValueError) as exc:
        raise WebhookRefused(
            f"bounces.ses_certificate {path}: cannot read it ({exc})", 500
        ) from None
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise WebhookRefused("the SNS signature does not verify") from None


def ses_event(settings: Settings, body: bytes) -> Event:
    message = _json(body)
    verify_sns(settings, message)
    kind = message.get("Type")
    label = _text(message, "MessageId")
    if kind == "SubscriptionConfirmation":
        return Event("subscribe", [], label, _text(message, "SubscribeURL"))
    if kind != "Notification":
        return Event("ignored", [], label)
    notification = _json(_text(message, "Message").encode())
    return Event("reports", ses_reports(notification), label)


def ses_reports(notification: dict) -> list[Report]:
    """Reports of one SES notification (``notificationType``) or event (``eventType``).

    Every field is read with its type checked: a field of another shape is a 400, never a
    crash, and never a value turned into text by ``str()``."""
    what = _text(notification, "notificationType") or _text(notification, "eventType")
    mail = _object(notification, "mail")
    envelope = (_text(mail, "source"),)
    message_id = _text(_object(mail, "commonHeaders"), "messageId")
    for header in _objects(mail, "headers"):
        if _text(header, "name").lower() == "message-id":
            message_id = _text(header, "value")
    if what == "Bounce":
        return _ses_bounces(_object(notification, "bounce"), envelope, message_id)
    if what == "Complaint":
        return _ses_complaints(_object(notification, "complaint"), envelope, message_id)
    return []


def _ses_bounces(bounce: dict, envelope: tuple[str, ...], message_id: str) -> list[Report]:
    permanent = _text(bounce, "bounceType") == "Permanent"
    found = []
    for person in _objects(bounce, "bouncedRecipients"):
        status = _text(person, "status")
        hard = permanent and (not status or is_recipient_failure(status))
        recipient = _text(person, "emailAddress")
        found.append(
            Report(
                kind="hard" if hard else "soft",
                recipient=recipient,
                status=status or _text(bounce, "bounceSubType"),
                detail=scrub(_text(person, "diagnosticCode")),
                fingerprint=fingerprint("ses", _text(bounce, "feedbackId"), recipient),
                envelope=envelope,
                message_id=message_id,
            )
        )
    return found


def _ses_complaints(complaint: dict, envelope: tuple[str, ...], message_id: str) -> list[Report]:
    feedback = _text(complaint, "complaintFeedbackType") or "abuse"
    if feedback == "not-spam":
        return []
    found = []
    for person in _objects(complaint, "complainedRecipients"):
        recipient = _text(person, "emailAddress")
        found.append(
            Report(
                kind="complaint",
                recipient=recipient,
                status=feedback,
                detail=scrub(_text(complaint, "userAgent")),
                fingerprint=fingerprint("ses", _text(complaint, "feedbackId"), recipient),
                envelope=envelope,
                message_id=message_id,
            )
        )
    return found


# --- Postmark -------------------------------------------------------------------------------

_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
# AutoResponder (an out-of-office answer) and the rest are no bounces.
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked"}


def check_basic_auth(settings: Settings, authorization: str | None) -> None:
    if not settings.postmark_username or not settings.postmark_password:
        raise WebhookRefused("Postmark webhooks are off: set bounces.postmark_username/password")
    scheme, _, encoded = (authorization or "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise WebhookRefused("authentication required", 401) from None
    good_user = hmac.compare_digest(user.encode(), settings.postmark_username.encode())
    good_password = hmac.compare_digest(password.encode(), settings.postmark_password.encode())
    if scheme.lower() != "basic" or not (good_user and good_password):
        raise WebhookRefused("authentication required", 401)


def postmark_event(settings: Settings, authorization: str | None, body: bytes) -> Event:
    check_basic_auth(settings, authorization)
    payload = _json(body)
    record = _text(payload, "RecordType")
    event_id = _event_id(payload)
    recipient = _text(payload, "Email")
    bounce_type = _text(payload, "Type")
    description = _text(payload, "Description")
    if not event_id or not recipient:
        return Event("ignored", [], event_id)
    if record == "SpamComplaint":
        kind = "complaint"
    elif record == "Bounce" and bounce_type in _POSTMARK_HARD:
        kind = "hard"
    elif record == "Bounce" and bounce_type in _POSTMARK_SOFT:
        kind = "soft"
    else:
        return Event("ignored", [], event_id)
    report = Report(
        kind=kind,
        recipient=recipient,
        status=bounce_type,
        detail=scrub(description),
        fingerprint=fingerprint("postmark", event_id),
    )
    return Event("reports", [report], event_id)


def _event_id(payload: dict) -> str:
    """Postmark's ``ID``: a number (documented) or its text."""
    value = payload.get("ID")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise WebhookRefused("field 'ID' must be a number or text", 400)
    return str(value)


# --- payload fields -------------------------------------------------------------------------


def _text(data: dict, name: str) -> str:
    """A text field ('' when absent or null); anything else is refused with a 400."""
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WebhookRefused(f"field {name!r} must be text", 400)
    return value


def _object(data: dict, name: str) -> dict:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebhookRefused(f"field {name!r} must be an object", 400)
    return value


def _objects(data: dict, name: str) -> list[dict]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise WebhookRefused(f"field {name!r} must be a list of objects", 400)
    return value


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRefused("not JSON", 400) from None
    if not isinstance(data, dict):
        raise WebhookRefused("not a JSON object", 400)
    return data
