"""Parsing the date options: ``--since 2025-08-01``, ``--since 14d``, ``--since 2w``.

A date is a whole day in the organisation's time zone: ``--since`` includes its day,
``--until`` includes its day too (the window ends at the next midnight), so a day across a
daylight-saving change is 23 or 25 hours long. ``Nd`` and ``Nw`` count back from now by
calendar days, keeping the time of day.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from newsletter.clock import now
from newsletter.errors import NewsletterError

_RELATIVE = re.compile(r"([0-9]+)\s*([dw])", re.IGNORECASE)
# date.fromisoformat alone would also take 20250801 and week dates such as 2025-W31-1.
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HELP = "use YYYY-MM-DD, Nd or Nw"


def _day(text: str) -> date:
    try:
        if not _DAY.fullmatch(text.strip()):
            raise ValueError(text)
        return date.fromisoformat(text.strip())
    except ValueError:
        raise NewsletterError(f"invalid date {text!r}: {_HELP}") from None


def start_of(text: str, tz: ZoneInfo, *, today: datetime | None = None) -> datetime:
    """The moment a ``--since`` value starts, as an aware datetime."""
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        amount = int(match.group(1)) * (7 if match.group(2).lower() == "w" else 1)
        try:
            return _in_range((today or now()).astimezone(tz) - timedelta(days=amount), text)
        except OverflowError:
            raise NewsletterError(f"date out of range: {text!r}") from None
    return _in_range(datetime.combine(_day(text), time(0), tzinfo=tz), text)


def end_of(text: str, tz: ZoneInfo) -> datetime:
    """The exclusive end of an inclusive ``--until`` day."""
    try:
        end = datetime.combine(_day(text) + timedelta(days=1), time(0), tzinfo=tz)
    except OverflowError:
        raise NewsletterError(f"date out of range: {text!r}") from None
    return _in_range(end, text)


def _in_range(moment: datetime, text: str) -> datetime:
    """``moment`` if it can be stored: it is compared as UTC text, and 0001-01-01 in
    Helsinki is still year 0 in UTC, which datetime cannot hold."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise NewsletterError(f"date out of range: {text!r}") from None
    return moment


def format_date(moment: datetime, lang: str, tz: ZoneInfo) -> str:
    """A date as readers of ``lang`` write it: 15.08.2025 (fi), 15.8.2025 (sv), 15 Aug 2025 (en)."""
    local = moment.astimezone(tz)
    if lang == "fi":
        return local.strftime("%d.%m.%Y")
    if lang == "sv":
        return f"{local.day}.{local.month}.{local.year}"
    return f"{local.day} {local.strftime('%b')} {local.year}"
