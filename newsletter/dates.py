"""Parsing the date options: ``--since 2025-08-01`` (or the Finnish ``1.8.2025``),
``--since 14d``, ``--since 2w``.

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
# The way the tool prints dates for Finnish readers (15.08.2025), so staff can paste them back.
_FINNISH_DAY = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})")
_HELP = "use YYYY-MM-DD, DD.MM.YYYY, Nd or Nw"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day(text: str, help_text: str = _HELP) -> date:
    clean = text.strip()
    try:
        finnish = _FINNISH_DAY.fullmatch(clean)
        if finnish:
            day, month, year = (int(part) for part in finnish.groups())
            return date(year, month, day)
        if not _DAY.fullmatch(clean):
            raise ValueError(text)
        return date.fromisoformat(clean)
    except ValueError:
        raise NewsletterError(f"invalid date {text!r}: {help_text}") from None


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
        day = _day(text, "use YYYY-MM-DD or DD.MM.YYYY (a day, not Nd)")
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
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
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"  # not %b: locale-dependent
