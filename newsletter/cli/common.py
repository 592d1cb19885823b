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
        return self._db

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
