"""Texts of the web pages in fi, sv and en (the confirmation mail's are in ``confirmations``).

Values are ``str.format`` templates. Nothing here ever contains a subscriber's address:
no page may confirm or list addresses.
"""

from __future__ import annotations

from collections.abc import Iterable

from newsletter.config import LANGUAGES

LANGUAGE_NAMES = {"fi": "Suomi", "sv": "Svenska", "en": "English"}

STRINGS: dict[str, dict[str, str]] = {
    # Shared layout
    "site": {"fi": "Uutiskirje", "sv": "Nyhetsbrev", "en": "Newsletter"},
    "skip_to_content": {
        "fi": "Siirry sisältöön",
        "sv": "Hoppa till innehållet",
        "en": "Skip to content",
    },
    "language_choice": {"fi": "Sivun kieli", "sv": "Sidans språk", "en": "Page language"},
    "to_website": {
        "fi": "Siirry verkkosivuillemme",
        "sv": "Till vår webbplats",
        "en": "Visit our website",
    },
    "form_expired": {
        "fi": "Lomake vanheni. Lataa sivu uudelleen ja yritä uudestaan.",
        "sv": "Formuläret har gått ut. Ladda om sidan och försök igen.",
        "en": "The form has expired. Reload the page and try again.",
    },
    "form_expired_title": {
        "fi": "Lomake vanheni",
        "sv": "Formuläret har gått ut",
        "en": "The form has expired",
    },
    "too_large_title": {
        "fi": "Pyyntö on liian suuri",
        "sv": "Begäran är för stor",
        "en": "The request is too large",
    },
    "too_large": {
        "fi": "Lähetetyt tiedot olivat liian suuret. Yritä uudelleen lyhyemmillä tiedoilla.",
        "sv": "De skickade uppgifterna var för stora. Försök igen med kortare uppgifter.",
        "en": "The data sent was too large. Please try again with shorter input.",
    },
    "not_found_title": {"fi": "Sivua ei löydy", "sv": "Sidan finns inte", "en": "Page not found"},
    "not_found": {
        "fi": "Hakemaasi sivua ei ole.",
        "sv": "Sidan du söker finns inte.",
        "en": "The page you are looking for does not exist.",
    },
    "bad_link_title": {
        "fi": "Linkki ei kelpaa",
        "sv": "Länken fungerar inte",
        "en": "Invalid link",
    },
    "bad_link": {
        "fi": "Linkki on virheellinen tai se ei ole enää voimassa. Tarkista, että kopioit "
        "sen sähköpostista kokonaan.",
        "sv": "Länken är felaktig eller inte längre giltig. Kontrollera att du kopierade hela "
        "länken från e-postmeddelandet.",
        "en": "The link is incorrect or no longer valid. Check that you copied the whole link "
        "from the email.",
    },
    "server_error_title": {
        "fi": "Jotain meni vikaan",
        "sv": "Något gick fel",
        "en": "Something went wrong",
    },
    "server_error": {
        "fi": "Emme voineet käsitellä pyyntöä. Yritä hetken päästä uudelleen.",
        "sv": "Vi kunde inte behandla begäran. Försök igen om en stund.",
        "en": "We could not handle the request. Please try again in a moment.",
    },
    # Archive of past editions and their web versions
    "archive_title": {
        "fi": "Aiemmat uutiskirjeet: {topic}",
        "sv": "Tidigare nyhetsbrev: {topic}",
        "en": "Past newsletters: {topic}",
    },
    "archive_intro": {
        "fi": "Tässä ovat aiheen {topic} uutiskirjeet, uusin ensin.",
        "sv": "Här är nyhetsbreven om {topic}, det senaste först.",
        "en": "These are the {topic} newsletters, newest first.",
    },
    "archive_empty": {
        "fi": "Yhtään uutiskirjettä ei ole vielä lähetetty.",
        "sv": "Inga nyhetsbrev har skickats ännu.",
        "en": "No newsletter has been sent yet.",
    },
    "archive_feed": {
        "fi": "Seuraa syötteenä (Atom)",
        "sv": "Följ som flöde (Atom)",
        "en": "Follow as a feed (Atom)",
    },
    "archive_subscribe": {
        "fi": "Tilaa uutiskirje sähköpostiisi",
        "sv": "Prenumerera på nyhetsbrevet per e-post",
        "en": "Get the newsletter by email",
    },
    # Sign-up
    "subscribe_title": {
        "fi": "Tilaa uutiskirje",
        "sv": "Prenumerera på nyhetsbrevet",
        "en": "Subscribe to the newsletter",
    },
    "subscribe_intro": {
        "fi": "Valitse aiheet, joista haluat uutiskirjeen. Lähetämme sinulle vahvistusviestin: "
        "tilaus alkaa vasta, kun vahvistat sen.",
        "sv": "Välj de ämnen du vill få nyhetsbrev om. Vi skickar ett bekräftelsemeddelande: "
        "prenumerationen börjar först när du bekräftar den.",
        "en": "Choose the topics you want a newsletter about. We will send you a confirmation "
        "message: the subscription starts only once you confirm it.",
    },
    "email_label": {"fi": "Sähköpostiosoite", "sv": "E-postadress", "en": "Email address"},
    "name_label": {
        "fi": "Nimi (vapaaehtoinen)",
        "sv": "Namn (frivilligt)",
        "en": "Name (optional)",
    },
    "lang_label": {
        "fi": "Uutiskirjeen kieli",
        "sv": "Nyhetsbrevets språk",
        "en": "Newsletter language",
    },
    "topics_legend": {"fi": "Aiheet", "sv": "Ämnen", "en": "Topics"},
    "subscribe_button": {"fi": "Tilaa", "sv": "Prenumerera", "en": "Subscribe"},
    "subscribe_privacy": {
        "fi": "Voit perua tilauksen milloin tahansa jokaisen uutiskirjeen lopussa olevasta "
        "linkistä. Käytämme osoitettasi vain uutiskirjeen lähettämiseen.",
        "sv": "Du kan avsluta prenumerationen när som helst via länken i slutet av varje "
        "nyhetsbrev. Vi använder din adress endast för att skicka nyhetsbrevet.",
        "en": "You can unsubscribe at any time with the link at the end of every newsletter. "
        "We use your address only to send the newsletter.",
    },
    "error_email": {
        "fi": "Tarkista sähköpostiosoite.",
        "sv": "Kontrollera e-postadressen.",
        "en": "Please check the email address.",
    },
    "error_topics": {
        "fi": "Valitse vähintään yksi aihe.",
        "sv": "Välj minst ett ämne.",
        "en": "Please choose at least one topic.",
    },
    "no_topics": {
        "fi": "Tilattavia uutiskirjeitä ei vielä ole.",
        "sv": "Det finns inga nyhetsbrev att prenumerera på ännu.",
        "en": "There are no newsletters to subscribe to yet.",
    },
    "errors_heading": {
        "fi": "Korjaa lomakkeen tiedot",
        "sv": "Rätta uppgifterna i formuläret",
        "en": "Please correct the form",
    },
    "check_inbox_title": {
        "fi": "Tarkista sähköpostisi",
        "sv": "Kontrollera din e-post",
        "en": "Check your inbox",
    },
    "check_inbox": {
        "fi": "Jos osoite on oikein, saat pian viestin, jossa on vahvistuslinkki. Tilaus alkaa "
        "vasta, kun vahvistat sen. Linkki on voimassa {days} päivää.",
        "sv": "Om adressen är rätt får du snart ett meddelande med en bekräftelselänk. "
        "Prenumerationen börjar först när du bekräftar den. Länken gäller i {days} dagar.",
        "en": "If the address is correct, you will soon receive a message with a confirmation "
        "link. The subscription starts only once you confirm it. The link is valid for "
        "{days} days.",
    },
    "check_inbox_spam": {
        "fi": "Ellei viestiä kuulu, katso myös roskapostikansio.",
        "sv": "Om meddelandet inte kommer, titta även i skräppostmappen.",
        "en": "If the message does not arrive, please also look in your spam folder.",
    },
    "rate_limited_title": {
        "fi": "Liian monta yritystä",
        "sv": "För många försök",
        "en": "Too many attempts",
    },
    "rate_limited": {
        "fi": "Tästä verkosta on tehty juuri monta tilausta. Yritä uudelleen tunnin kuluttua.",
        "sv": "Många prenumerationer har nyss gjorts från det här nätverket. Försök igen om "
        "en timme.",
        "en": "Many sign-ups have just been made from this network. Please try again in an hour.",
    },
    # Confirmation
    "confirm_title": {
        "fi": "Vahvista tilaus",
        "sv": "Bekräfta prenumerationen",
        "en": "Confirm your subscription",
    },
    "confirm_intro": {
        "fi": "Vahvista uutiskirjeen tilaus seuraavista aiheista:",
        "sv": "Bekräfta prenumerationen på nyhetsbrev om följande ämnen:",
        "en": "Confirm your newsletter subscription to these topics:",
    },
    "confirm_button": {
        "fi": "Vahvista tilaus",
        "sv": "Bekräfta prenumerationen",
        "en": "Confirm subscription",
    },
    "confirm_nothing": {
        "fi": "Tässä linkissä ei ole vahvistettavaa: tilaus on jo vahvistettu tai peruttu.",
        "sv": "Det finns inget att bekräfta med den här länken: prenumerationen är redan "
        "bekräftad eller avslutad.",
        "en": "There is nothing to confirm with this link: the subscription has already been "
        "confirmed or cancelled.",
    },
    "confirmed_title": {
        "fi": "Kiitos, tilaus on vahvistettu",
        "sv": "Tack, prenumerationen är bekräftad",
        "en": "Thank you, your subscription is confirmed",
    },
    "confirmed": {
        "fi": "Saat jatkossa uutiskirjeen näistä aiheista:",
        "sv": "Du får i fortsättningen nyhetsbrev om dessa ämnen:",
        "en": "From now on you will receive the newsletter on these topics:",
    },
    "expired_title": {
        "fi": "Vahvistuslinkki on vanhentunut",
        "sv": "Bekräftelselänken har gått ut",
        "en": "The confirmation link has expired",
    },
    "expired": {
        "fi": "Tilaa uutiskirje uudelleen, niin lähetämme uuden vahvistuslinkin.",
        "sv": "Prenumerera på nytt, så skickar vi en ny bekräftelselänk.",
        "en": "Subscribe again and we will send you a new confirmation link.",
    },
    # Unsubscribe
    "unsubscribe_title": {
        "fi": "Peru tilaus",
        "sv": "Avsluta prenumerationen",
        "en": "Unsubscribe",
    },
    "unsubscribe_question": {
        "fi": "Haluatko perua uutiskirjeen tilauksen aiheesta {topic}?",
        "sv": "Vill du avsluta prenumerationen på nyhetsbrevet om {topic}?",
        "en": "Do you want to unsubscribe from the newsletter on {topic}?",
    },
    "unsubscribe_button": {
        "fi": "Peru tilaus",
        "sv": "Avsluta prenumerationen",
        "en": "Unsubscribe",
    },
    "unsubscribed_title": {
        "fi": "Tilaus on peruttu",
        "sv": "Prenumerationen är avslutad",
        "en": "You have unsubscribed",
    },
    "unsubscribed": {
        "fi": "Et saa enää uutiskirjettä aiheesta {topic}.",
        "sv": "Du får inte längre nyhetsbrevet om {topic}.",
        "en": "You will no longer receive the newsletter on {topic}.",
    },
    "unsubscribed_any": {
        "fi": "Et saa enää tätä uutiskirjettä.",
        "sv": "Du får inte längre det här nyhetsbrevet.",
        "en": "You will no longer receive this newsletter.",
    },
    "not_subscribed": {
        "fi": "Tällä linkillä ei ole voimassa olevaa tilausta.",
        "sv": "Det finns ingen gällande prenumeration för den här länken.",
        "en": "There is no active subscription for this link.",
    },
    "manage_instead": {
        "fi": "Muuta tilauksiasi sen sijaan",
        "sv": "Ändra dina prenumerationer i stället",
        "en": "Change your subscriptions instead",
    },
    "manage": {
        "fi": "Muuta tilauksiasi",
        "sv": "Ändra dina prenumerationer",
        "en": "Change your subscriptions",
    },
    # Preferences
    "prefs_title": {
        "fi": "Uutiskirjeen asetukset",
        "sv": "Inställningar för nyhetsbrevet",
        "en": "Newsletter settings",
    },
    "prefs_topics_legend": {
        "fi": "Aiheet, joista saat uutiskirjeen",
        "sv": "Ämnen du får nyhetsbrev om",
        "en": "Topics you receive the newsletter on",
    },
    "prefs_pending": {
        "fi": "odottaa vahvistusta",
        "sv": "väntar på bekräftelse",
        "en": "awaiting confirmation",
    },
    "prefs_lang_label": {
        "fi": "Uutiskirjeen kieli",
        "sv": "Nyhetsbrevets språk",
        "en": "Newsletter language",
    },
    "prefs_save": {"fi": "Tallenna", "sv": "Spara", "en": "Save"},
    "prefs_saved": {
        "fi": "Asetukset on tallennettu.",
        "sv": "Inställningarna har sparats.",
        "en": "Your settings have been saved.",
    },
    "prefs_all_title": {
        "fi": "Peru kaikki tilaukset",
        "sv": "Avsluta alla prenumerationer",
        "en": "Unsubscribe from everything",
    },
    "prefs_all_text": {
        "fi": "Et saa sen jälkeen mitään uutiskirjeitämme.",
        "sv": "Därefter får du inga av våra nyhetsbrev.",
        "en": "You will then receive none of our newsletters.",
    },
    "prefs_all_button": {
        "fi": "Peru kaikki tilaukset",
        "sv": "Avsluta alla prenumerationer",
        "en": "Unsubscribe from all",
    },
    "prefs_all_done": {
        "fi": "Kaikki tilauksesi on peruttu.",
        "sv": "Alla dina prenumerationer har avslutats.",
        "en": "All your subscriptions have been cancelled.",
    },
    "prefs_erase_title": {
        "fi": "Poista tietosi",
        "sv": "Radera dina uppgifter",
        "en": "Delete your data",
    },
    "prefs_erase_text": {
        "fi": "Poistamme sähköpostiosoitteesi, nimesi ja tilaushistoriasi pysyvästi.",
        "sv": "Vi raderar din e-postadress, ditt namn och din prenumerationshistorik permanent.",
        "en": "We permanently delete your email address, your name and your subscription history.",
    },
    "prefs_erase_button": {
        "fi": "Poista tietoni…",
        "sv": "Radera mina uppgifter…",
        "en": "Delete my data…",
    },
    "erase_title": {
        "fi": "Poistetaanko tietosi pysyvästi?",
        "sv": "Radera dina uppgifter permanent?",
        "en": "Delete your data permanently?",
    },
    "erase_text": {
        "fi": "Poistoa ei voi perua. Et saa enää uutiskirjeitämme, ja jos haluat niitä myöhemmin, "
        "sinun pitää tilata ne uudelleen.",
        "sv": "Raderingen kan inte ångras. Du får inte längre våra nyhetsbrev, och om du vill ha "
        "dem senare måste du prenumerera på nytt.",
        "en": "This cannot be undone. You will no longer receive our newsletters, and to get "
        "them later you will need to subscribe again.",
    },
    "erase_button": {
        "fi": "Poista pysyvästi",
        "sv": "Radera permanent",
        "en": "Delete permanently",
    },
    "erase_cancel": {
        "fi": "Peruuta ja palaa asetuksiin",
        "sv": "Avbryt och gå tillbaka till inställningarna",
        "en": "Cancel and go back to the settings",
    },
    "erased_title": {
        "fi": "Tietosi on poistettu",
        "sv": "Dina uppgifter har raderats",
        "en": "Your data has been deleted",
    },
    "erased": {
        "fi": "Olemme poistaneet osoitteesi ja tilaushistoriasi. Et saa enää uutiskirjeitämme.",
        "sv": "Vi har raderat din adress och din prenumerationshistorik. Du får inte längre "
        "våra nyhetsbrev.",
        "en": "We have deleted your address and subscription history. You will no longer "
        "receive our newsletters.",
    },
}


def text(key: str, lang: str, **values: object) -> str:
    """The string ``key`` in ``lang`` (English when a language lacks it), formatted."""
    entry = STRINGS[key]
    template = entry.get(lang) or entry["en"]
    return template.format(**values) if values else template


def best_language(candidates: Iterable[str | None], default: str) -> str:
    """The first supported language among ``candidates``, else ``default``."""
    for candidate in candidates:
        if candidate:
            code = candidate.strip().lower()[:2]
            if code in LANGUAGES:
                return code
    return default
