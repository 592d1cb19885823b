"""The report of an import: one line per source, with its counts, error and warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

from newsletter.content.intake.problems import Problem


@dataclass
class SourceReport:
    source: str
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    error: str | None = None  # the source could not be imported at all
    problems: list[Problem] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def skipped(self) -> int:
        return sum(1 for p in self.problems if p.skipped)

    def warnings(self) -> list[str]:
        """One line per problem, naming the source and the item."""
        return [f"{self.source}: {p}" for p in self.problems]

    def summary(self) -> str:
        if self.error:
            return f"{self.source}: failed"
        skipped = f", skipped {self.skipped}" if self.skipped else ""
        return (
            f"{self.source}: imported {self.imported}, updated {self.updated},"
            f" unchanged {self.unchanged}{skipped}"
        )

    def as_json(self) -> dict:
        return {
            "source": self.source,
            "ok": self.error is None,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "error": self.error,
            "warnings": [p.as_json() for p in self.problems],
        }


@dataclass
class ImportReport:
    sources: list[SourceReport] = field(default_factory=list)

    def total(self, outcome: str) -> int:
        return sum(getattr(s, outcome) for s in self.sources)

    @property
    def imported(self) -> int:
        return self.total("imported")

    @property
    def updated(self) -> int:
        return self.total("updated")

    @property
    def unchanged(self) -> int:
        return self.total("unchanged")

    @property
    def skipped(self) -> int:
        return self.total("skipped")

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.sources if s.error]

    @property
    def failed(self) -> bool:
        return any(s.error for s in self.sources)

    def as_json(self) -> dict:
        warnings = [{"source": s.source, **p.as_json()} for s in self.sources for p in s.problems]
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": self.errors,
            "warnings": warnings,
            "sources": [s.as_json() for s in self.sources],
        }
