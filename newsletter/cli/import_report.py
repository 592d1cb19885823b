"""The report of ``subscribers import`` for people, and its progress bar."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from newsletter.audience import importer
from newsletter.cli.common import warn
from newsletter.content.topics import Topic

SHOWN = 50  # lines of each kind on stderr; --json lists them all


def print_report(path: Path, report: importer.ImportReport, dry_run: bool) -> None:
    prefix = "dry run, nothing written: " if dry_run else ""
    typer.echo(
        f"{prefix}{path.name}: {report.added} added, {report.updated} updated,"
        f" {report.unchanged} unchanged, {report.duplicates} duplicates,"
        f" {report.suppressed} suppressed, {len(report.invalid)} invalid"
    )
    typer.echo("  columns: " + "; ".join(f"{k} <- {v}" for k, v in report.columns.items()))
    if report.attributes:
        typer.echo("  kept as attributes: " + ", ".join(report.attributes))
    if report.ignored:
        typer.echo("  ignored: " + ", ".join(report.ignored))
    if report.topics_created:
        typer.echo("  topics created: " + ", ".join(report.topics_created))
    if report.left:
        why = ", ".join(f"{n} {importer.REASONS[k]}" for k, n in sorted(report.left.items()))
        typer.echo(f"  not subscribed: {why}")
    if report.no_consent:
        typer.echo(
            f"  {report.no_consent} kept unconfirmed despite --confirmed: the file records"
            " no consent for them"
        )
    _print_lines([f"line {i.line}: {i.email!r}: {i.error}" for i in report.invalid], "invalid rows")
    _print_lines(
        [f"line {line}: duplicate of line {first} ({email})"
         for line, first, email in report.duplicate_lines],
        "duplicates",
    )  # fmt: skip
    _print_lines([f"line {w.line}: warning: {w.error}" for w in report.warnings], "warnings")


def _print_lines(lines: list[str], what: str) -> None:
    for line in lines[:SHOWN]:
        typer.echo(f"  {line}", err=True)
    if len(lines) > SHOWN:
        more = len(lines) - SHOWN
        typer.echo(f"  ... and {more} more {what} (--json lists them all)", err=True)


def unconfirmed_notice(file: Path, report: importer.ImportReport, found: list[Topic]) -> None:
    """Say plainly that unconfirmed people get nothing yet, and what to do about it."""
    if not report.unconfirmed:
        return
    topic_args = "".join(f" --topic {t.slug}" for t in found)
    warn(
        f"{report.unconfirmed} people were imported unconfirmed: they get no newsletter"
        " until they confirm. To ask them by mail: newsletter subscribers import"
        f" {file.name}{topic_args} --send-confirmation (safe to run again). If you can prove"
        " they already consented, import the file again with --confirmed."
    )


_PHASES = {"reading": "checking {name}", "writing": "writing {name}"}


class ImportProgress:
    """A rich progress bar on stderr, shown only once an import has taken a second."""

    def __init__(self, name: str, *, show: bool) -> None:
        self.name, self.show = name, show
        self.started = time.monotonic()
        self.bar = None
        self.tasks: dict[str, object] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.show:
            return
        if self.bar is None:
            if time.monotonic() - self.started < 1.0:
                return
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                console=Console(stderr=True), transient=True,
            )  # fmt: skip
            self.bar.start()
        if phase not in self.tasks:
            label = _PHASES.get(phase, phase).format(name=self.name)
            self.tasks[phase] = self.bar.add_task(label, total=total)
        self.bar.update(self.tasks[phase], completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
