"""``newsletter topics``: list, add and edit topics (names per language)."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.audience import subscribers
from newsletter.cli.common import print_json, state
from newsletter.cli.output import limited, print_json_rows, print_table
from newsletter.content import archive, contacts, topics

app = typer.Typer(
    help="Topics: each has its own newsletter.\n\nExample: newsletter topics list --json",
    no_args_is_help=True,
)


# The per-language options `topics add` and `topics edit` share.
NameFi = Annotated[str | None, typer.Option("--name-fi", help="Name in Finnish")]
NameSv = Annotated[str | None, typer.Option("--name-sv", help="Name in Swedish")]
NameEn = Annotated[str | None, typer.Option("--name-en", help="Name in English")]
DescriptionFi = Annotated[
    str | None, typer.Option("--description-fi", help="Description in Finnish")
]
DescriptionSv = Annotated[
    str | None, typer.Option("--description-sv", help="Description in Swedish")
]
DescriptionEn = Annotated[
    str | None, typer.Option("--description-en", help="Description in English")
]


def _topic_json(topic: topics.Topic) -> dict:
    return {
        "slug": topic.slug,
        "name": topic.name,
        "names": dict(topic.names),
        "descriptions": dict(topic.descriptions),
    }


def _save(
    ctx: typer.Context,
    slug: str,
    name: str | None,
    names: dict[str, str | None],
    descriptions: dict[str, str | None],
    as_json: bool,
) -> None:
    topic = topics.add_topic(
        state(ctx).db,
        slug,
        name,
        names={k: v for k, v in names.items() if v is not None},
        descriptions={k: v for k, v in descriptions.items() if v is not None},
    )
    if as_json:
        print_json(_topic_json(topic))
        return
    typer.echo(f"topic {topic.slug}: {topic.name}")
    for lang, text in topic.names:
        typer.echo(f"  {lang}: {text}")


@app.command("add")
def add(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Lower-case slug, e.g. yhteisovaikuttavuus")],
    name: Annotated[
        str | None, typer.Option("--name", help="Display name (default: the first --name-L)")
    ] = None,
    name_fi: NameFi = None,
    name_sv: NameSv = None,
    name_en: NameEn = None,
    description_fi: DescriptionFi = None,
    description_sv: DescriptionSv = None,
    description_en: DescriptionEn = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create a topic (or rename one); readers see the name in their language.

    Example: newsletter topics add vaikuttavuus --name-fi Vaikuttavuus --name-sv Effekt
    """
    names = {"fi": name_fi, "sv": name_sv, "en": name_en}
    descriptions = {"fi": description_fi, "sv": description_sv, "en": description_en}
    _save(ctx, slug, name, names, descriptions, as_json)


@app.command("edit")
def edit(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Topic slug or name")],
    name: Annotated[str | None, typer.Option("--name", help="Display name")] = None,
    name_fi: NameFi = None,
    name_sv: NameSv = None,
    name_en: NameEn = None,
    description_fi: DescriptionFi = None,
    description_sv: DescriptionSv = None,
    description_en: DescriptionEn = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Change a topic's names or descriptions; an empty value ("") removes one.

    Example: newsletter topics edit vaikuttavuus --name-en Impact --description-en "..."
    """
    found = topics.resolve(state(ctx).db, topic)
    names = {"fi": name_fi, "sv": name_sv, "en": name_en}
    descriptions = {"fi": description_fi, "sv": description_sv, "en": description_en}
    _save(ctx, found.slug, name, names, descriptions, as_json)


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
        {
            **_topic_json(t),
            "listed": t.slug in listed,
            "subscribers": subscribers.count_recipients(db, [t.id]),
        }
        for t in limited(topics.all_topics(db), limit)
    )
    if as_json:
        print_json_rows(rows)
        return
    print_table(
        ["topic", "name", ("recipients", "right"), "sign-up page", "other languages"],
        rows,
        lambda r: (
            r["slug"],
            r["name"],
            r["subscribers"],
            "shown" if r["listed"] else "hidden",
            "; ".join(f"{k}: {v}" for k, v in r["names"].items() if v != r["name"]),
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


@app.command("contact-add")
def contact_add(
    ctx: typer.Context,
    topic: TopicArgument,
    name: Annotated[str, typer.Option("--name", help="The person's name")],
    title: Annotated[str, typer.Option("--title", help="Job title, e.g. Erityisasiantuntija")] = "",
    title_en: Annotated[
        str, typer.Option("--title-en", help="Job title in English, e.g. Senior Specialist")
    ] = "",
    email: Annotated[str, typer.Option("--email", help="Email address")] = "",
    phone: Annotated[str, typer.Option("--phone", help="Phone number")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Add a contact person shown under the topic's stories ("Lisätietoja").

    Example: newsletter topics contact-add yhteisovaikuttavuus --name "Mari Hirvonen"
    --title Erityisasiantuntija --title-en "Senior Specialist" --email mari@example.fi
    """
    person = contacts.add(
        state(ctx).db, topic, name=name, title=title, title_en=title_en, email=email, phone=phone
    )
    if as_json:
        print_json(person.as_json())
        return
    typer.echo(f"contact {person.name} added to {topic}")


@app.command("contacts")
def contacts_list(
    ctx: typer.Context,
    topic: TopicArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List the topic's contact people in the order editions show them.

    Example: newsletter topics contacts yhteisovaikuttavuus
    """
    people = contacts.list_(state(ctx).db, topic)
    if as_json:
        print_json([p.as_json() for p in people])
        return
    print_table(
        ["NAME", "TITLE", "TITLE (EN)", "EMAIL", "PHONE"],
        people,
        lambda p: (p.name, p.title, p.title_en, p.email, p.phone),
        empty=f"{topic} has no contact people: add one with `newsletter topics contact-add`",
    )


@app.command("contact-remove")
def contact_remove(
    ctx: typer.Context,
    topic: TopicArgument,
    who: Annotated[str, typer.Argument(help="The contact's name or email")],
) -> None:
    """Remove a contact person from the topic (editions already built keep theirs).

    Example: newsletter topics contact-remove yhteisovaikuttavuus mari@example.fi
    """
    person = contacts.remove(state(ctx).db, topic, who)
    typer.echo(f"contact {person.name} removed from {topic}")


@app.command("archive")
def archive_cmd(
    ctx: typer.Context,
    topic: TopicArgument,
    off: Annotated[
        bool, typer.Option("--off", help="Keep the topic's editions out of the public archive")
    ] = False,
) -> None:
    """List the topic's sent editions on its public archive page and Atom feed (or not).

    Example: newsletter topics archive henkilosto --off
    """
    found = archive.set_archived(state(ctx).db, topic, not off)
    where = "kept out of the archive" if off else "listed in the archive at /archive/" + found.slug
    typer.echo(f"topic {found.slug}: {where}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="topics")
