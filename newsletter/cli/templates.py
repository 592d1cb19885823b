"""``newsletter templates``: list the templates and copy the packaged ones to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import print_json, state
from newsletter.cli.output import print_table
from newsletter.content import template_files

app = typer.Typer(
    help="Email templates: the packaged defaults and your own (templates_dir).\n\n"
    "docs/templates.md lists every variable.\n\nExample: newsletter templates copy my-templates",
    no_args_is_help=True,
)


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List the templates `build` can use: your templates_dir first, then the packaged ones.

    Example: newsletter templates list
    """
    rows = template_files.list_templates(state(ctx).settings)
    if as_json:
        print_json([row.as_json() for row in rows])
        return
    print_table(
        ["NAME", "SOURCE", "PATH", "NOTE"],
        rows,
        lambda r: (
            r.name,
            r.source,
            r.path,
            "replaces the packaged one" if r.shadows_packaged else "",
        ),
    )


@app.command("copy")
def copy(
    directory: Annotated[Path, typer.Argument(help="Folder to copy the packaged templates to")],
) -> None:
    """Copy the packaged templates into DIR to edit; set templates_dir = "DIR" to use them.

    Example: newsletter templates copy my-templates
    """
    copied = template_files.copy_templates(directory)
    typer.echo(f"copied {len(copied)} templates to {directory}")
    typer.echo(f'next: set templates_dir = "{directory}" in newsletter.toml, edit, then build')


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="templates")
