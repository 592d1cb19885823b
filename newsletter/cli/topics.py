"""``newsletter topics``: list and add topics."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.audience import subscribers
from newsletter.cli.common import print_json, state
from newsletter.cli.output import limited, print_json_rows, print_table
from newsletter.content import topics

app = typer.Typer(
    help="Topics: each has its own newsletter.\n\nExample: newsletter topics list --json",
    no_args_is_help=True,
)


@app.command("add")
def add(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Lower-case slug, e.g. yhteisovaikuttavuus")],
    name: Annotated[str, typer.Option("--name", help="Display name")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create a topic (or rename one).

    Example: newsletter topics add vaikuttavuus --name Vaikuttavuus
    """
    topic = topics.add_topic(state(ctx).db, slug, name)
    if as_json:
        print_json({"slug": topic.slug, "name": topic.name})
        return
    typer.echo(f"topic {topic.slug}: {topic.name}")


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N topics")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List topics with their number of confirmed recipients.

    Example: newsletter topics list --json
    """
    db = state(ctx).db
    listed = {t.slug for t in topics.all_topics(db, listed_only=True)}
    rows = (
        {"slug": t.slug, "name": t.name, "subscribers": subscribers.count_recipients(db, [t.id])}
        for t in limited(topics.all_topics(db), limit)
    )
    if as_json:
        print_json_rows(rows)
        return
    print_table(
        ["topic", "name", ("recipients", "right"), "sign-up page"],
        rows,
        lambda r: (
            r["slug"],
            r["name"],
            r["subscribers"],
            "shown" if r["slug"] in listed else "hidden",
        ),
        empty="no topics yet: import articles or run `newsletter topics add`",
        caption=lambda n: "recipients: confirmed subscribers who would be mailed",
    )


TopicArgument = Annotated[str, typer.Argument(help="Topic slug or name")]


@app.command("hide")
def hide(ctx: typer.Context, topic: TopicArgument) -> None:
    """Stop offering a topic on the public sign-up page (its subscribers keep it).

    Example: newsletter topics hide saatio
    """
    found = topics.set_listed(state(ctx).db, topic, False)
    typer.echo(f"topic {found.slug}: hidden from the sign-up page")


@app.command("unhide")
def unhide(ctx: typer.Context, topic: TopicArgument) -> None:
    """Offer a hidden topic on the public sign-up page again.

    Example: newsletter topics unhide saatio
    """
    found = topics.set_listed(state(ctx).db, topic, True)
    typer.echo(f"topic {found.slug}: offered on the sign-up page")


@app.command("remove")
def remove(ctx: typer.Context, topic: TopicArgument) -> None:
    """Delete a topic nobody subscribes to and no edition used, e.g. a stray feed tag.

    Example: newsletter topics remove uusi-kampanja
    """
    found = topics.remove_topic(state(ctx).db, topic)
    typer.echo(f"topic {found.slug} removed (its articles keep their other topics)")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="topics")
