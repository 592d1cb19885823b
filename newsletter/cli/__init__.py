"""The ``newsletter`` command line: parses, calls the core, prints. No logic lives here."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from newsletter import __version__
from newsletter.cli import articles, build, check, send, serve, subscribers, templates, topics
from newsletter.cli.common import State, state, warn
from newsletter.config import config_path, load_settings, write_template
from newsletter.errors import NewsletterError
from newsletter.store.db import open_db


def fail(message: str) -> typer.Exit:
    """Print one clear line on stderr; the caller raises the returned Exit (code 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


class NewsletterGroup(TyperGroup):
    """Turns every NewsletterError raised by a command into a one-line error, exit 1.

    A locked or damaged database file and a file or folder that cannot be written are the
    user's to fix, not bugs, so sqlite3 and OS errors get the same one line.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            raise fail(str(exc)) from None
        except sqlite3.Error as exc:
            where = ctx.obj.settings.db if isinstance(ctx.obj, State) else "database"
            raise fail(f"{where}: {exc}") from None
        except BrokenPipeError:
            raise  # `newsletter ... | head`: click leaves quietly
        except OSError as exc:
            raise fail(_os_error(exc)) from None


def _os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return exc.strerror or str(exc) or type(exc).__name__


app = typer.Typer(
    cls=NewsletterGroup,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"newsletter {__version__}")
        raise typer.Exit()


def _warn_about_new_paths(config: Path, *, explicit_config: bool, db: Path | None) -> None:
    """A mistyped --config or --db would otherwise run silently on defaults or an empty file."""
    if explicit_config and not config.exists():
        warn(f"{config} does not exist: using the default settings")
    if db is not None and not db.exists() and db.parent.is_dir():
        warn(f"{db} does not exist: creating a new, empty database")


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Settings file (env NEWSLETTER_CONFIG; default newsletter.toml)"
        ),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="SQLite database (env NEWSLETTER_DB; default subscribers.db)"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Compose and mail topic newsletters.

    Example: newsletter articles import feed.xml && newsletter build --topic Vaikuttavuus
    """
    path = config_path(config)
    settings = load_settings(path)
    if db is not None:
        settings = settings.with_overrides(db=db)
    if ctx.invoked_subcommand != "init":
        _warn_about_new_paths(path, explicit_config=config is not None, db=db)
    ctx.obj = State(settings=settings, config_path=path)
    ctx.call_on_close(ctx.obj.close)


@app.command()
def init(ctx: typer.Context) -> None:
    """Write a commented newsletter.toml and create the database.

    Example: newsletter init
    """
    current = state(ctx)
    if not current.config_path.exists():
        write_template(current.config_path)
        typer.echo(f"wrote {current.config_path}")
    else:
        typer.echo(f"{current.config_path} exists; left as it is")
    # Read the file again: when it was just written, its database path resolves against
    # its folder, which the defaults loaded before it existed could not know.
    settings = load_settings(current.config_path)
    database = settings.db if ctx.find_root().params.get("db") is None else current.settings.db
    open_db(database).close()
    typer.echo(f"database ready: {database}")


for module in (topics, articles, build, subscribers, send, check, serve, templates):
    module.register(app)


def main() -> None:
    app(prog_name="newsletter")
