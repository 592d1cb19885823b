"""What went wrong with one source: items skipped and warnings, each naming its item.

A lenient import stores the good items of a source and reports the rest; ``strict`` turns
the first problem that would skip an item (or a feed that had to be recovered) into an error
for the whole source, as ``articles import --strict`` promises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    message: str
    position: int | None = None  # 1-based item (or CSV line) number; None: the whole source
    guid: str | None = None
    link: str | None = None
    unit: str = "item"  # "item", or "line" for CSV rows, or "file" for Markdown folders
    skipped: bool = False

    def __str__(self) -> str:
        if self.position is None:
            return _one_line(self.message)
        verb = " skipped" if self.skipped else ""
        message = _one_line(self.message)
        if self.unit == "file":  # a Markdown folder's file is named by its path
            return f"{_one_line(self.link or '')}{verb}: {message}"
        named = _one_line(self.link or self.guid or "")
        shown = f" ({named})" if named and named not in message else ""
        return f"{self.unit} {self.position}{verb}: {message}{shown}"

    def as_json(self) -> dict:
        return {
            "position": self.position,
            "unit": self.unit if self.position is not None else None,
            "guid": self.guid or None,
            "link": self.link or None,
            "message": self.message,
            "skipped": self.skipped,
        }


def _one_line(text: str) -> str:
    """A report line stays one line, whatever a feed put in a link or title."""
    return " ".join(text.split())


class StrictError(ValueError):
    """A problem that ``--strict`` makes fatal for its source."""


@dataclass
class Problems:
    strict: bool = False
    found: list[Problem] = field(default_factory=list)

    def skip(self, problem: Problem) -> None:
        """The item cannot become an article; under ``strict`` the source fails."""
        if self.strict:
            raise StrictError(str(problem))
        self.found.append(Problem(**{**problem.__dict__, "skipped": True}))

    def recovered(self, message: str) -> None:
        """The source itself was damaged but could be read; fatal under ``strict``."""
        if self.strict:
            raise StrictError(message)
        self.found.append(Problem(message))

    def warn(self, problem: Problem) -> None:
        """Something was changed or left out, and the item is still imported."""
        self.found.append(problem)

    def warner(
        self, position: int, guid: str | None, link: str | None, unit: str = "item"
    ) -> Callable[[str], None]:
        """A ``warn(message)`` for one item."""
        return lambda message: self.warn(Problem(message, position, guid, link, unit))

    @property
    def skipped(self) -> int:
        return sum(1 for p in self.found if p.skipped)
