"""``newsletter templates``: which templates exist, and copies of the packaged ones to edit.

A copy in ``templates_dir`` (or any folder passed to ``build --template PATH``) shadows the
packaged file of the same name, partials included, so staff change only what they need.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from newsletter.config import Settings
from newsletter.content.render import HTML_SUFFIX, TEXT_SUFFIX, packaged_templates_dir
from newsletter.errors import NewsletterError

_SUFFIXES = (HTML_SUFFIX, TEXT_SUFFIX)


@dataclass(frozen=True)
class TemplateFile:
    name: str  # relative to its folder, e.g. partials/footer.mjml.j2
    source: str  # "packaged" or "templates_dir"
    path: Path
    shadows_packaged: bool = False

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "path": str(self.path),
            "shadows_packaged": self.shadows_packaged,
        }


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES))


def list_templates(settings: Settings) -> list[TemplateFile]:
    """The configured folder's templates first, then the packaged ones not shadowed."""
    packaged = packaged_templates_dir()
    packaged_names = {p.relative_to(packaged).as_posix() for p in _files(packaged)}
    found: list[TemplateFile] = []
    own: set[str] = set()
    folder = settings.templates_dir
    if folder is not None and Path(folder).is_dir():
        for path in _files(Path(folder)):
            name = path.relative_to(folder).as_posix()
            own.add(name)
            found.append(TemplateFile(name, "templates_dir", path, name in packaged_names))
    for path in _files(packaged):
        name = path.relative_to(packaged).as_posix()
        if name not in own:
            found.append(TemplateFile(name, "packaged", path))
    return found


def copy_templates(destination: Path) -> list[Path]:
    """Copy every packaged template into ``destination``; existing files are never replaced.

    Refuses the whole copy when any file is there already, so a folder is never left half
    old, half new.
    """
    packaged = packaged_templates_dir()
    pairs = [(p, destination / p.relative_to(packaged)) for p in _files(packaged)]
    existing = [str(target) for _, target in pairs if target.exists()]
    if existing:
        raise NewsletterError(
            f"{destination} already has {len(existing)} of the templates (e.g. {existing[0]}):"
            " choose an empty folder; nothing was copied"
        )
    try:
        for source, target in pairs:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    except OSError as exc:
        raise NewsletterError(
            f"cannot copy the templates to {destination}: {exc.strerror}"
        ) from None
    return [target for _, target in pairs]
