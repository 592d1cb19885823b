"""Bounces and complaints that arrive after a send: DSNs and ARF reports from a mailbox
(Maildir, mbox, IMAP) and provider webhooks, all recorded the same way."""

from newsletter.delivery.bounces.record import edition_counts, last_edition_warning
from newsletter.delivery.bounces.sources import ImportReport, from_imap, from_mailbox, process

__all__ = [
    "ImportReport",
    "edition_counts",
    "from_imap",
    "from_mailbox",
    "last_edition_warning",
    "process",
]
