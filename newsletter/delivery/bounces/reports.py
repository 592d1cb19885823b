"""Bounce and complaint reports, read from mail: RFC 3464 DSNs and RFC 5965 (ARF) reports.

A mail message becomes a list of ``Report`` (one per failed recipient of a DSN, one for a
complaint) or ``None`` when it is neither, such as an auto-reply or a human answer; those
are left alone and listed. Matching a report to a person happens in ``record``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

# RFC 3463 (and 7505's 5.1.10) codes that say the recipient's address itself does not work.
# 5.1.7/5.1.8 are about the sender, and 5.7.x is policy (DMARC, a blocklisted sending IP):
# counting those as bounces would mark good subscribers bounced because of our own setup.
BAD_RECIPIENT = frozenset({"1.0", "1.1", "1.2", "1.3", "1.4", "1.6", "1.10", "2.1"})
ENHANCED_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDRESS = re.compile(r"[^\s<>();:,\"']+@[^\s<>();:,\"']+")
MAX_DETAIL = 300


@dataclass(frozen=True)
class Report:
    kind: str  # hard | soft | complaint
    recipient: str  # the address the report names ('' when the reporter redacted it)
    status: str  # enhanced status code, or the ARF feedback type
    detail: str  # the diagnostic, addresses scrubbed
    fingerprint: str  # the same report read twice has the same fingerprint
    envelope: tuple[str, ...] = ()  # addresses that may carry our VERP token
    message_id: str = ""  # the Message-ID of our message the report is about


def is_recipient_failure(code: str) -> bool:
    """True for an enhanced status code (``5.1.1``) that says the address itself is bad."""
    found = ENHANCED_CODE.search(code or "")
    return bool(
        found and found.group(1) == "5" and f"{found.group(2)}.{found.group(3)}" in BAD_RECIPIENT
    )


def kind_of_status(action: str, code: str) -> str | None:
    """hard / soft for a DSN recipient block; None for one that is not a failure."""
    action = action.strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return None
    if action == "failed" and is_recipient_failure(code):
        return "hard"
    return "soft"  # failed for another reason, or delayed: counted, never fatal


def scrub(text: str) -> str:
    """A diagnostic without the addresses in it (reports outlive an erasure)."""
    return _ADDRESS.sub("<address>", " ".join(str(text).split()))[:MAX_DETAIL]


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()


def parse(data: bytes) -> list[Report] | None:
    """The reports in one mail message, or None when it is neither a DSN nor an ARF report."""
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    report_type = _report_type(message)
    if report_type == "feedback-report":
        return _complaint(message, data)
    if report_type == "delivery-status":
        return _dsn(message, data)
    return None


def _report_type(message: EmailMessage) -> str:
    for part in message.walk():
        if part.get_content_type() == "multipart/report":
            return str(part.get_param("report-type", "") or "").lower()
    return ""


def _identity(message: EmailMessage, data: bytes) -> str:
    """What makes a report message the same message when read again."""
    return str(message.get("Message-ID", "") or "").strip() or hashlib.sha256(data).hexdigest()


def _envelope_addresses(*messages: Message | None) -> tuple[str, ...]:
    """Every address in the headers a bounce is addressed by: the VERP token is in one."""
    found: list[str] = []
    for message in messages:
        if message is None:
            continue
        for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "Return-Path",
                     "X-Envelope-To", "X-Failed-Recipients"):  # fmt: skip
            for value in message.get_all(name, []) or []:
                found += _ADDRESS.findall(str(value))
    return tuple(dict.fromkeys(found))


def _original(message: EmailMessage) -> Message | None:
    """Our message as the report returns it: message/rfc822 or text/rfc822-headers."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        if kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True) or b""
            return message_from_bytes(raw, policy=policy.default)
    return None


def _field_blocks(message: EmailMessage, content_type: str) -> list[Message]:
    """The header-like blocks of a message/delivery-status or message/feedback-report part."""
    for part in message.walk():
        if part.get_content_type() != content_type:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return [block for block in payload if isinstance(block, Message)]
        raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else b""
        # Some reporters send the fields base64-encoded or as one block: parse them here.
        text = part.get_payload(decode=True) or raw
        chunks = re.split(rb"\r?\n\r?\n", text.strip())
        return [message_from_bytes(chunk + b"\n\n", policy=policy.compat32) for chunk in chunks]
    return []


def _address(value: object) -> str:
    """``rfc822; maija@example.fi`` -> ``maija@example.fi``."""
    text = str(value or "")
    _, semi, rest = text.partition(";")
    candidate = (rest if semi else text).strip().strip("<>")
    return candidate if "@" in candidate else ""


def _dsn(message: EmailMessage, data: bytes) -> list[Report] | None:
    blocks = _field_blocks(message, "message/delivery-status")
    original = _original(message)
    original_id = str(original.get("Message-ID", "") if original else "").strip()
    envelope = _envelope_addresses(message, original)
    identity = _identity(message, data)
    reports: list[Report] = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        final = _address(block.get("Final-Recipient"))
        recipient = final or _address(block.get("Original-Recipient"))
        if not recipient:
            continue
        status = str(block.get("Status", "") or "").strip()
        diagnostic = str(block.get("Diagnostic-Code", "") or "")
        code = _best_code(status, diagnostic)
        kind = kind_of_status(str(block.get("Action", "failed")), code)
        if kind is None:
            continue
        reports.append(
            Report(
                kind=kind,
                recipient=recipient,
                status=code or status[:20],
                detail=scrub(diagnostic or status),
                fingerprint=fingerprint("dsn", identity, recipient.lower()),
                envelope=envelope,
                message_id=original_id,
            )
        )
    return reports or None


def _best_code(status: str, diagnostic: str) -> str:
    """The enhanced code of a recipient block: Exim writes ``Status: 5.0.0`` and the real
    code (``550 5.1.1 ...``) only in the diagnostic."""
    given = ENHANCED_CODE.search(status)
    detailed = ENHANCED_CODE.search(diagnostic)
    if given and not given.group(0).endswith(".0.0"):
        return given.group(0)
    if detailed and (not given or detailed.group(1) == given.group(1)):
        return detailed.group(0)
    return given.group(0) if given else ""


def _complaint(message: EmailMessage, data: bytes) -> list[Report] | None:
    blocks = _field_blocks(message, "message/feedback-report")
    if not blocks:
        return None
    fields = blocks[0]
    original = _original(message)
    original_id = str(original.get("Message-ID", "") if original else "").strip()
    recipient = _address(fields.get("Original-Rcpt-To")) or (
        _address(original.get("To")) if original is not None else ""
    )
    feedback = str(fields.get("Feedback-Type", "abuse") or "abuse").strip().lower()
    if feedback not in ("abuse", "fraud", "virus", "other", "not-spam"):
        feedback = "abuse"
    if feedback == "not-spam":
        return None  # a "this is not spam" report is no complaint
    return [
        Report(
            kind="complaint",
            recipient=recipient,
            status=feedback,
            detail=scrub(str(fields.get("User-Agent", "") or "")),
            fingerprint=fingerprint("arf", _identity(message, data)),
            envelope=_envelope_addresses(original)
            + tuple(_ADDRESS.findall(str(fields.get("Original-Mail-From", "") or ""))),
            message_id=original_id,
        )
    ]
