"""Parsing the date options: ``--since 2025-08-01``, ``--since 14d``, ``--since 2w``.

Dates are whole days in the organisation's time zone: ``--since`` includes its day,
``--until`` includes its day too (the window ends at the next midnight).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from newsletter.clock import now
from newsletter.errors import NewsletterError

_RELATIVE = re.compile(r"^(\d+)\s*([dw])$", re.IGNORECASE)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise NewsletterError(f"invalid date {text!r}: use YYYY-MM-DD, Nd or Nw") from None


def start_of(text: str, tz: ZoneInfo, *, today: datetime | None = None) -> datetime:
    """The moment a ``--since`` value starts, as an aware datetime."""
    match = _RELATIVE.match(text.strip())
    if match:
        amount = int(match.group(1)) * (7 if match.group(2).lower() == "w" else 1)
        return (today or now()).astimezone(tz) - timedelta(days=amount)
    return datetime.combine(_day(text), time(0), tzinfo=tz)


def end_of(text: str, tz: ZoneInfo) -> datetime:
    """The exclusive end of an inclusive ``--until`` day."""
    return datetime.combine(_day(text) + timedelta(days=1), time(0), tzinfo=tz)


def format_date(moment: datetime, lang: str, tz: ZoneInfo) -> str:
    """A date as readers of ``lang`` write it: 15.08.2025 (fi), 15.8.2025 (sv), 15 Aug 2025 (en)."""
    local = moment.astimezone(tz)
    if lang == "fi":
        return local.strftime("%d.%m.%Y")
    if lang == "sv":
        return f"{local.day}.{local.month}.{local.year}"
    return f"{local.day} {local.strftime('%b')} {local.year}"
