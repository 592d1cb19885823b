"""The files of an edition: ``edition-<id>[.<lang>].html/.txt`` (with the per-recipient
placeholders the sender fills) and ``preview-<id>[.<lang>].*`` for a sample subscriber."""

from __future__ import annotations

from pathlib import Path

from newsletter.errors import NewsletterError


def file_paths(out: Path, edition_id: int, lang: str | None = None) -> tuple[Path, Path]:
    """``edition-ID.html/.txt`` for the main variant, ``edition-ID.LANG.html/.txt`` else."""
    stem = f"edition-{edition_id}" + (f".{lang}" if lang else "")
    return out / f"{stem}.html", out / f"{stem}.txt"


def write_files(
    out: Path, edition_id: int, html: str, text: str, lang: str | None = None
) -> tuple[Path, Path]:
    html_path, text_path = file_paths(out, edition_id, lang)
    try:
        out.mkdir(parents=True, exist_ok=True)
        html_path.write_text(html, encoding="utf-8")
        text_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot write the edition to {out}: {exc.strerror}") from None
    return html_path, text_path


def write_preview(
    out: Path, edition_id: int, html: str, text: str, lang: str | None = None
) -> tuple[Path, Path]:
    """``preview-<id>[.<lang>].html/.txt``: the edition (or a language variant) filled in for
    a sample subscriber. Kept apart from ``edition-<id>.*``, which hold the placeholders the
    sender fills."""
    stem = f"preview-{edition_id}" + (f".{lang}" if lang else "")
    html_path, text_path = out / f"{stem}.html", out / f"{stem}.txt"
    try:
        out.mkdir(parents=True, exist_ok=True)
        html_path.write_text(html, encoding="utf-8")
        text_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot write the preview to {out}: {exc.strerror}") from None
    return html_path, text_path
