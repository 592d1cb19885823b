"""Failure classification: what a refusal says about the address, the message or the relay.

- about the recipient (5.1.x, 5.2.1 ...): a hard bounce, never retried;
- temporary (4xx, a dropped connection): retried in the same run with back-off;
- about the session or the relay (login, TLS, the sender refused, a server too slow, the
  same policy refusal for one recipient after another): the rows stay pending and the send
  pauses with the cause and what to fix;
- a connection refused or closed at once (``421 Too many connections``): one worker fewer.
"""

from __future__ import annotations

import re

from newsletter.delivery.bounces.reports import ENHANCED_CODE, is_recipient_failure
from newsletter.mail import smtp

# The same refusal for this many recipients in a row, none accepted between: the relay is
# refusing us (relaying denied, account blocked), not each address.
RELAY_STREAK = 3
# Reasons of failed rows that are about the address or consent: --retry-failed leaves them.
FINAL_REASONS = (
    "hard bounce",
    "invalid address",
    "unsubscribed",
    "erased",
    "bounced",
    "blocklisted",
)
_BUSY = re.compile(
    r"\b421\b|too many|connection refused|reset by peer|cannot reach|dropped|unexpectedly closed",
    re.IGNORECASE,
)


def is_hard_bounce(error: smtp.PermanentFailure) -> bool:
    """A refusal of the recipient itself, not of this message or of the sender.

    The enhanced status code decides when there is one, whatever the stage: servers refuse
    an unknown mailbox after DATA too, and refuse a blocklisted sender at RCPT TO too.
    """
    found = ENHANCED_CODE.search(error.reply)
    if found and found.group(1) == "5":
        return is_recipient_failure(found.group(0))
    return error.hard_bounce or error.code in (550, 551, 553)


def refusal_kind(error: smtp.PermanentFailure) -> str:
    """What makes two refusals "the same": the reply code and its enhanced code."""
    found = ENHANCED_CODE.search(error.reply)
    return f"{error.code} {found.group(0) if found else ''}".strip()


def same_refusal(first: smtp.PermanentFailure, second: smtp.PermanentFailure) -> bool:
    return refusal_kind(first) == refusal_kind(second)


def is_capacity(error: smtp.ConnectionFailed) -> bool:
    """A connection refused, dropped or turned away as one too many: fewer connections may
    well work, so this lowers the concurrency instead of stopping the send."""
    return error.code == 421 or bool(_BUSY.search(str(error)))


def fix_hint(error: smtp.ConnectionFailed) -> str:
    """What to check for a session failure, named by setting."""
    text = str(error).lower()
    if "login" in text or "auth" in text or error.code in (530, 534, 535):
        return "check smtp.username and NEWSLETTER_SMTP_PASSWORD"
    if "tls" in text or "certificate" in text or "ssl" in text:
        return "check smtp.security, smtp.port and smtp.ca_file"
    if "smtp.deadline" in text or "smtp.max_reply" in text:
        return "the server is too slow or broken; try again later or use another relay"
    if "sender" in text:
        return "check mail.from and mail.bounce_address: the relay must accept them"
    return "check smtp.host and smtp.port and that the relay is running"


def relay_refused(error: smtp.PermanentFailure) -> smtp.ConnectionFailed:
    """The session failure for a refusal repeated across recipients."""
    return smtp.ConnectionFailed(
        f"the SMTP relay refused {RELAY_STREAK} recipients in a row with {error.reply!r}:"
        " that is about the relay or the account (relaying, authentication, sending"
        " limits), not the addresses",
        code=error.code,
    )
