"""Time helpers: everything is stored as ISO 8601 in UTC with an explicit offset."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """UTC ISO 8601 with offset and seconds precision; sorts correctly as text."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a time zone is required")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def now_iso() -> str:
    return to_iso(now())


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)
