"""What every command module shares: the loaded settings, the database, JSON output."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from newsletter.config import Settings

if TYPE_CHECKING:
    from sqlite_utils import Database


@dataclass
class State:
    settings: Settings
    config_path: Path
    db_option: Path | None = None  # --db, when given
    _db: Database | None = field(default=None, repr=False)

    @property
    def db(self) -> Database:
        if self._db is None:
            # sqlite-utils loads here, not at start-up: --help and --version never need it.
            from newsletter.store.db import open_db

            self._db = open_db(self.settings.db)
            self.note_link_key()
        return self._db

    def note_link_key(self) -> None:
        """Say once that the link key changed (the change is recorded now, so the next
        command is quiet); links already mailed keep working with the kept old key."""
        from newsletter.store.db import record_link_key

        earlier = record_link_key(self.db, self.settings.secret, only_changes=True)
        if earlier:
            warn(
                "the link key changed (NEWSLETTER_SECRET set or changed): new mails are"
                f" signed with the new key; {earlier} earlier key(s) are kept only to check"
                " links already mailed, which keep working"
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    assert isinstance(root.obj, State), "the root callback sets the state"
    return root.obj


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def check_base_url(settings: Settings) -> None:
    """Every mail and page links to base_url: refuse one off loopback without https
    (ConfigError), and say so when plain http on loopback is used."""
    from newsletter import links

    warning = links.check_base_url(settings)
    if warning:
        warn(warning)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
