"""The ``newsletter`` command line: parses, calls the core, prints. No logic lives here.

Command modules load lazily: ``newsletter --help``, ``--version`` or ``status`` import only
what they use, not Flask, feed parsers or Jinja (issue 17: start-up under 0.15 s).
"""

from __future__ import annotations

import importlib
import sqlite3
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from newsletter import __version__
from newsletter.cli.common import State, state, warn
from newsletter.cli.params import quicken, quicken_params
from newsletter.config import config_path, exposed_secret_warning, load_settings
from newsletter.errors import NewsletterError

# Command name -> (module under newsletter.cli, the line `newsletter --help` shows). The line
# is kept here so the root help need not import every module; a test compares it with the
# command's own docstring.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("settings", "Show the settings in force and where each came from."),
    "build": ("build", "Build an edition from a topic's new articles and store it as a draft."),
    "preview": (
        "build",
        "Show an edition as a sample subscriber gets it: its HTML file, its text, or a browser.",
    ),
    "check": (
        "check",
        "Check an edition before sending: size, links, alt texts, footer, settings, spam score.",
    ),
    "send": ("send", "Send an edition to its topic's subscribers; run it again to resume."),
    "status": (
        "status",
        "Show how far an edition's send got (and, with --failed, who was not reached and why).",
    ),
    "digest": ("digest", "Import a topic's feeds, build and send an edition when there is news."),
    "serve": (
        "serve",
        "Run the web service: one-click unsubscribe, sign-up with confirmation, preferences.",
    ),
    "topics": ("topics", "Topics: each has its own newsletter."),
    "articles": ("articles", "Articles: import from feeds and files, list by topic."),
    "editions": ("build", "Stored editions: list, inspect and delete drafts."),
    "templates": (
        "templates",
        "Email templates: the packaged defaults and your own (templates_dir).",
    ),
    "subscribers": ("subscribers", "Subscribers, their topics and consent."),
    "unsubscribes": ("serve", "Unsubscribe requests that arrived by mail."),
    "bounces": ("bounces", "Bounces and complaints that arrive after a send."),
}


def fail(message: str) -> typer.Exit:
    """Print one clear line on stderr; the caller raises the returned Exit (code 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


# click's UsageError, whichever click typer uses (its own copy since typer 0.16 or so).
_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]


def _no_bool(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return quicken_params(params)


def _plain_flags(command: Any) -> None:
    """On/off options show no ``<bool>`` type in --help: the flag is the whole story.

    ``get_params`` is wrapped because --help itself (and typer's completion options) are
    added to a command's parameters only when it runs.
    """
    quicken(command)
    if not getattr(command, "_plain_flags", False):
        original = command.get_params
        command.get_params = lambda ctx: _no_bool(original(ctx))
        command._plain_flags = True
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)


class NewsletterGroup(TyperGroup):
    """The root command: loads command modules on demand, and turns every NewsletterError
    raised by a command into a one-line error, exit 1.

    A locked or damaged database file and a file or folder that cannot be written are the
    user's to fix, not bugs, so sqlite3 and OS errors get the same one line.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _plain_flags(self)

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(name for name in LAZY_COMMANDS if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = self.commands.get(cmd_name)
        if found is not None or cmd_name not in LAZY_COMMANDS:
            return found
        # Listing (help, completion): a stand-in that carries the one-line help only.
        line = LAZY_COMMANDS[cmd_name][1]
        return typer.core.TyperCommand(name=cmd_name, help=line, short_help=line)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in LAZY_COMMANDS:
            self.load(args[0])
        try:
            return super().resolve_command(ctx, args)
        except _USAGE_ERROR as exc:
            # typer suggests only from the commands loaded so far: offer the lazy ones too.
            close = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if close and "Did you mean" not in exc.message:
                names = ", ".join(repr(name) for name in close)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {names}?"
            raise

    def load(self, name: str) -> None:
        """Import the module of command ``name`` and add the commands it registers."""
        if name in self.commands:
            return
        module = importlib.import_module(f"newsletter.cli.{LAZY_COMMANDS[name][0]}")
        holder = typer.Typer(add_completion=False)
        holder.callback()(lambda: None)  # always a group, even for a module of one command
        module.register(holder)
        group = typer.main.get_command(holder)
        _plain_flags(group)
        for sub_name, sub in group.commands.items():  # type: ignore[attr-defined]
            self.commands.setdefault(sub_name, sub)

    def load_all(self) -> None:
        for name in LAZY_COMMANDS:
            self.load(name)

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
    if ctx.invoked_subcommand not in ("init", "config"):
        _warn_about_new_paths(path, explicit_config=config is not None, db=db)
    exposed = exposed_secret_warning(path)
    if exposed:
        warn(exposed)
    ctx.obj = State(settings=settings, config_path=path, db_option=db)
    ctx.call_on_close(ctx.obj.close)


@app.command()
def init(ctx: typer.Context) -> None:
    """Write a commented newsletter.toml and create the database.

    Example: newsletter init
    """
    from newsletter.cli import settings as settings_command

    settings_command.init(state(ctx), explicit_db=ctx.find_root().params.get("db") is not None)


def main() -> None:
    app(prog_name="newsletter")
