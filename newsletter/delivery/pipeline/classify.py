"""Failure classification: which permanent SMTP refusals say the address itself is bad."""

from __future__ import annotations

import re

from newsletter.mail import smtp

# RFC 3463 (and 7505's 5.1.10) codes that say the recipient's address itself does not work.
# 5.1.7/5.1.8 are about the sender, and 5.7.x is policy (DMARC, a blocklisted sending IP):
# counting those as bounces would mark good subscribers bounced because of our own setup.
_ENHANCED_CODE = re.compile(r"\b5\.(\d{1,3})\.(\d{1,3})\b")
_BAD_RECIPIENT = {"1.0", "1.1", "1.2", "1.3", "1.4", "1.6", "1.10", "2.1"}


def is_hard_bounce(error: smtp.PermanentFailure) -> bool:
    """A refusal of the recipient itself, not of this message or of the sender.

    The enhanced status code decides when there is one, whatever the stage: servers refuse
    an unknown mailbox after DATA too, and refuse a blocklisted sender at RCPT TO too.
    """
    found = _ENHANCED_CODE.search(error.reply)
    if found:
        return f"{found.group(1)}.{found.group(2)}" in _BAD_RECIPIENT
    return error.hard_bounce or error.code in (550, 551, 553)
