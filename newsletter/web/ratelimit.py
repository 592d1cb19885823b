"""Sign-up rate limits per address and per client network, and the limit on failed
webhook authentication per client network, kept in the database.

The database (not memory) holds the attempts so limits hold across waitress threads,
several processes and restarts. Values are stored only as keyed hashes.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from sqlite_utils import Database

from newsletter.audience.subscribers import email_key
from newsletter.clock import now, to_iso
from newsletter.store.db import immediate, keyed_hash, meta_key

WINDOW = timedelta(hours=1)


def network_of(client_ip: str) -> str:
    """The unit a limit applies to: the address for IPv4, the /64 for IPv6.

    One IPv6 host usually owns a whole /64, so limiting single addresses would be no limit.
    """
    try:
        address = ipaddress.ip_address((client_ip or "").strip())
    except ValueError:
        return (client_ip or "unknown").strip()
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def attempt(
    db: Database, scope: str, value: str, limit: int, *, moment: datetime | None = None
) -> bool:
    """Count one attempt for ``value``; True while it stays within ``limit`` an hour.

    Insert-then-count inside one write transaction: concurrent attempts are serialised by
    SQLite's write lock, so two threads can never both take the last free slot.
    """
    if scope not in ("email", "ip"):
        raise ValueError(scope)
    moment = moment or now()
    digest = _digest(db, scope, value)
    with immediate(db):
        db.execute("DELETE FROM web_signup_attempts WHERE time < ?", [to_iso(moment - WINDOW)])
        db.execute(
            "INSERT INTO web_signup_attempts (scope, hash, time) VALUES (?, ?, ?)",
            [scope, digest, to_iso(moment)],
        )
        count = db.execute(
            "SELECT COUNT(*) FROM web_signup_attempts WHERE scope = ? AND hash = ? AND time >= ?",
            [scope, digest, to_iso(moment - WINDOW)],
        ).fetchone()[0]
    return count <= limit


def _digest(db: Database, scope: str, value: str) -> str:
    return keyed_hash(meta_key(db, "ratelimit_key"), f"{scope}:{value}")


def allow_ip(db: Database, client_ip: str, limit: int) -> bool:
    return attempt(db, "ip", network_of(client_ip), limit)


def allow_email(db: Database, address: str, limit: int) -> bool:
    return attempt(db, "email", email_key(address), limit)


# Failed webhook logins (a wrong Postmark password, a forged SNS signature) one client
# network may make in an hour before /hooks/* stops checking its posts at all: guessing the
# password then costs hours per handful of tries. Postmark and SNS retry refused posts.
HOOK_FAILURES_PER_HOUR = 10
_HOOK = "hook-auth:"  # its own hashes in the per-network rows: sign-ups are not counted


def hook_auth_blocked(db: Database, client_ip: str) -> bool:
    """True once the client's network failed webhook authentication too often this hour."""
    digest = _digest(db, "ip", _HOOK + network_of(client_ip))
    count = db.execute(
        "SELECT COUNT(*) FROM web_signup_attempts WHERE scope = 'ip' AND hash = ? AND time >= ?",
        [digest, to_iso(now() - WINDOW)],
    ).fetchone()[0]
    return count >= HOOK_FAILURES_PER_HOUR


def count_hook_auth_failure(db: Database, client_ip: str) -> None:
    attempt(db, "ip", _HOOK + network_of(client_ip), HOOK_FAILURES_PER_HOUR)
