"""The send pipeline: plan the delivery log, take the lock, dispatch over lanes, report.

planning (edition, delivery log, counts) -> lock -> batches and consent -> dispatcher ->
lanes (one event loop) -> results -> report; ``entry`` holds ``send`` and ``send_test``.
Tunables live in their module (``lock.HEARTBEAT_EVERY``, ``consent.CONSENT_FRESH``,
``planning.FIX_CHUNK``).
"""

from newsletter.delivery.pipeline.entry import (
    check_test_addresses,
    normalize_test_addresses,
    refuse_unsealed,
    send,
    send_test,
)
from newsletter.delivery.pipeline.jobs import Job, Progress, RateLimiter, Result, SendReport
from newsletter.delivery.pipeline.lock import (
    EditionLocked,
    acquire_lock,
    heartbeat,
    release_lock,
)
from newsletter.delivery.pipeline.planning import (
    Edition,
    counts,
    edition_message,
    failures,
    language_counts,
    load_edition,
    no_recipients,
    plan,
    status,
)
from newsletter.delivery.pipeline.report import requeue_failed, retryable

__all__ = [
    "Edition",
    "EditionLocked",
    "Job",
    "Progress",
    "RateLimiter",
    "Result",
    "SendReport",
    "acquire_lock",
    "check_test_addresses",
    "counts",
    "edition_message",
    "failures",
    "heartbeat",
    "language_counts",
    "load_edition",
    "no_recipients",
    "normalize_test_addresses",
    "plan",
    "refuse_unsealed",
    "release_lock",
    "requeue_failed",
    "retryable",
    "send",
    "send_test",
    "status",
]
