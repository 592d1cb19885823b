"""UI strings of the emails (editions and one-off messages) in Finnish, Swedish and English.

Templates get a ``t`` mapping for the edition's language; every language must define every
key, which a test checks, so a template can never show a key name instead of text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from newsletter.config import LANGUAGES
from newsletter.errors import NewsletterError

STRINGS: dict[str, dict[str, str]] = {
    "fi": {
        "view_in_browser": "Näytä selaimessa",
        "web_version": "Verkkoversio",
        "archive": "Aiemmat uutiskirjeet",
        "subscribe": "Tilaa uutiskirje",
        "subscribe_invite": (
            "Tilaa aiheen {topics} uutiskirje, niin saat ajankohtaiset jutut suoraan sähköpostiisi."
        ),
        "why_web": "Tämä on aiheen {topics} uutiskirjeen verkkoversio.",
        "contacts_heading": "Lisätietoja",
        "lead_label": "Pääjuttu",
        "more_stories": "Muut jutut",
        "newsletter": "Uutiskirje",
        "default_subject": "{topics}: uutiskirje {date}",
        "read_more": "Lue lisää",
        "why_edition": "Saat tämän viestin, koska olet tilannut aiheen {topics} uutiskirjeen.",
        "unsubscribe": "Peru tilaus",
        "preferences": "Muuta tilausasetuksia",
        "contact": "Yhteystiedot",
        "articles_heading": "Tässä numerossa",
        "image_alt_fallback": "Artikkelin kuva: {title}",
        "logo_alt": "{org} – logo",
        "text_unsubscribe": "Peru tilaus",
        "text_preferences": "Tilausasetukset",
    },
    "sv": {
        "view_in_browser": "Visa i webbläsaren",
        "web_version": "Webbversion",
        "archive": "Tidigare nyhetsbrev",
        "subscribe": "Prenumerera på nyhetsbrevet",
        "subscribe_invite": (
            "Prenumerera på nyhetsbrevet om {topics} så får du aktuella"
            " artiklar direkt i din e-post."
        ),
        "why_web": "Detta är webbversionen av nyhetsbrevet om {topics}.",
        "contacts_heading": "Mer information",
        "lead_label": "Huvudartikel",
        "more_stories": "Fler artiklar",
        "newsletter": "Nyhetsbrev",
        "default_subject": "{topics}: nyhetsbrev {date}",
        "read_more": "Läs mer",
        "why_edition": (
            "Du får detta meddelande eftersom du prenumererar på nyhetsbrevet om {topics}."
        ),
        "unsubscribe": "Avsluta prenumerationen",
        "preferences": "Ändra inställningar",
        "contact": "Kontaktuppgifter",
        "articles_heading": "I detta nummer",
        "image_alt_fallback": "Artikelns bild: {title}",
        "logo_alt": "{org} – logotyp",
        "text_unsubscribe": "Avsluta prenumerationen",
        "text_preferences": "Inställningar",
    },
    "en": {
        "view_in_browser": "View in your browser",
        "web_version": "Web version",
        "archive": "Past newsletters",
        "subscribe": "Subscribe to the newsletter",
        "subscribe_invite": (
            "Subscribe to the {topics} newsletter to get the latest stories in your inbox."
        ),
        "why_web": "This is the web version of the {topics} newsletter.",
        "contacts_heading": "More information",
        "lead_label": "Top story",
        "more_stories": "More stories",
        "newsletter": "Newsletter",
        "default_subject": "{topics}: newsletter {date}",
        "read_more": "Read more",
        "why_edition": "You receive this email because you subscribed to the {topics} newsletter.",
        "unsubscribe": "Unsubscribe",
        "preferences": "Change your preferences",
        "contact": "Contact",
        "articles_heading": "In this issue",
        "image_alt_fallback": "Article image: {title}",
        "logo_alt": "{org} logo",
        "text_unsubscribe": "Unsubscribe",
        "text_preferences": "Preferences",
    },
}


def check_lang(lang: str) -> str:
    if lang not in LANGUAGES:
        raise NewsletterError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
    return lang


# Language names and codes people write (in sources, spreadsheets, other tools' exports), by
# the language they mean.
_LANGUAGE_WORDS = {
    "fi": ("fi", "fin", "suomi", "finnish", "finska"),
    "sv": ("sv", "swe", "svenska", "swedish", "ruotsi"),
    "en": ("en", "eng", "english", "englanti", "engelska"),
}
_LANGUAGE_OF = {word: code for code, words in _LANGUAGE_WORDS.items() for word in words}


def supported_language(raw: str) -> str | None:
    """``fi``/``sv``/``en`` from a code or name as people write it (``FI``, ``sv-FI``,
    ``sv_FI``, ``suomi``, ``Svenska``); None when it names none of them."""
    text = raw.strip().casefold()
    return _LANGUAGE_OF.get(text) or _LANGUAGE_OF.get(re.split(r"[-_]", text)[0])


def language_code(raw: str | None) -> str | None:
    """A language tag as sources write it (``sv-FI``, ``FI``, ``en_GB``) as its primary
    subtag in lower case (``sv``, ``fi``, ``en``); None or blank stays None."""
    if raw is None:
        return None
    primary = raw.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary.isalpha() and len(primary) <= 8 else None


def strings(lang: str) -> Mapping[str, str]:
    """Every UI string of ``lang`` (for templates: ``{{ t.read_more }}``)."""
    return STRINGS[check_lang(lang)]


def text(lang: str, key: str, **values: object) -> str:
    """One string, formatted: ``text("fi", "why_edition", topics="Vaikuttavuus")``."""
    return strings(lang)[key].format(**values)
