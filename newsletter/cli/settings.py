"""``newsletter config`` (the settings in force and their sources) and ``init``'s next steps."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from newsletter.cli.common import State, print_json, state
from newsletter.cli.output import print_table
from newsletter.config import example_values_in_use, load_settings, write_template
from newsletter.effective import settings_in_force


def init(current: State, *, explicit_db: bool) -> None:
    """`newsletter init`: the commented file, the database, and what to do next."""
    from newsletter.store.db import open_db

    if not current.config_path.exists():
        write_template(current.config_path)
        typer.echo(f"wrote {current.config_path}")
    else:
        typer.echo(f"{current.config_path} exists; left as it is")
    # Read the file again: when it was just written, its database path resolves against
    # its folder, which the defaults loaded before it existed could not know.
    settings = load_settings(current.config_path)
    database = current.settings.db if explicit_db else settings.db
    open_db(database).close()
    typer.echo(f"database ready: {database}")
    examples = example_values_in_use(settings)
    path = current.config_path
    typer.echo("\nNext steps:")
    if examples:
        typer.echo(f"  1. edit {path}: these keys still hold example values: {', '.join(examples)}")
    else:
        typer.echo(f"  1. check {path} (`newsletter config` shows what is in force)")
    typer.echo(
        "  2. set NEWSLETTER_SECRET (and NEWSLETTER_SMTP_PASSWORD if your relay needs one)"
        " in the environment, never on the command line"
    )
    typer.echo(
        "  3. bring in articles and people: `newsletter articles import FEED-URL --topic T`,"
        " `newsletter subscribers import members.csv --topic T --send-confirmation`,"
        " then `newsletter build --topic T`"
    )


def config(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show the settings in force and where each came from.

    The source is the settings file, the environment, --db, or the default; secrets are
    shown only as set or unset.

    Example: newsletter config
    """
    current = state(ctx)
    rows = settings_in_force(
        current.settings, current.config_path, os.environ, db_option=current.db_option is not None
    )
    examples = set(example_values_in_use(current.settings))
    where = {
        "file": str(current.config_path),
        "environment": "environment",
        "option": "--db",
        "default": "default",
    }
    if as_json:
        print_json(
            {
                "file": str(current.config_path),
                "file_exists": current.config_path.exists(),
                "settings": [{**r.as_json(), "example": r.key in examples} for r in rows],
            }
        )
        return
    shown = "" if current.config_path.exists() else " (not found: defaults)"
    typer.echo(f"settings file: {current.config_path}{shown}")
    print_table(
        ["key", "value", "from", "variable"],
        rows,
        lambda r: (
            r.key,
            r.value + ("  (example: replace it)" if r.key in examples else ""),
            where[r.source] if r.source != "environment" else r.env,
            r.env,
        ),
    )


def register(root: typer.Typer) -> None:
    root.command("config")(config)
