"""A person in headless Chromium: signs up, confirms from the mail, changes settings,
unsubscribes. Screenshots at phone (375 px) and desktop (1280 px) width go to artifacts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SmtpSink
from web_helpers import LiveServer, confirm_link, wait_for_mail, web_settings

from newsletter import links
from newsletter.audience import subscribers
from newsletter.config import Settings
from newsletter.content import topics
from newsletter.store.db import token_key

pytestmark = pytest.mark.browser

WIDTHS = {"phone": (375, 812), "desktop": (1280, 900)}
EMAIL = "aino.lahtinen@example.fi"


@pytest.fixture
def served(settings: Settings, smtp_sink: SmtpSink, db):
    topics.add_topic(db, "yhteisovaikuttavuus", "Yhteisövaikuttavuus")
    topics.add_topic(db, "lapset-ja-nuoret", "Lapset ja nuoret")
    topics.add_topic(db, "perhekeskukset", "Perhekeskukset")
    config = web_settings(settings, smtp_sink)
    with LiveServer(config) as server:
        yield server


class Shots:
    """Screenshots of each step at both widths; each page must fit a phone screen."""

    def __init__(self, page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.taken: list[Path] = []

    def __call__(self, step: str) -> None:
        for name, (width, height) in WIDTHS.items():
            self.page.set_viewport_size({"width": width, "height": height})
            overflow = self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{step} scrolls sideways at {width} px"
            path = self.folder / f"web-{step}-{name}.png"
            self.page.screenshot(path=str(path), full_page=True)
            self.taken.append(path)
        self.page.set_viewport_size({"width": 375, "height": 812})


def test_person_signs_up_confirms_and_unsubscribes(
    browser, served, db, smtp_sink, artifacts
) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 812}, locale="fi-FI", java_script_enabled=False
    )
    page = context.new_page()
    failures: list[tuple[str, str, int]] = []
    page.on(
        "response",
        lambda r: failures.append((r.request.method, r.url, r.status)) if r.status >= 400 else None,
    )
    shots = Shots(page, artifacts)

    page.goto(f"{served.url}/subscribe?topic=yhteisovaikuttavuus")
    assert page.get_attribute("html", "lang") == "fi"
    # The stylesheet loaded under the Content-Security-Policy: cards are white on grey.
    card = page.locator(".card").first
    assert card.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 255, 255)"
    assert page.get_by_label("Yhteisövaikuttavuus").is_checked()
    shots("1-subscribe")

    page.get_by_label("Sähköpostiosoite").fill("ei-osoite")
    page.get_by_role("button", name="Tilaa").click()
    assert page.get_by_role("alert").is_visible()
    shots("2-subscribe-error")

    page.get_by_label("Sähköpostiosoite").fill(EMAIL)
    page.get_by_label("Nimi (vapaaehtoinen)").fill("Aino Lahtinen")
    page.get_by_label("Lapset ja nuoret").check()
    page.get_by_label("Uutiskirjeen kieli").select_option("fi")
    page.get_by_role("button", name="Tilaa").click()
    page.get_by_role("heading", name="Tarkista sähköpostisi").wait_for()
    shots("3-check-inbox")

    mail = wait_for_mail(smtp_sink, EMAIL)[0].message
    page.goto(confirm_link(mail))
    page.get_by_role("heading", name="Vahvista tilaus").wait_for()
    assert page.get_by_text("Lapset ja nuoret").is_visible()
    shots("4-confirm")
    page.get_by_role("button", name="Vahvista tilaus").click()
    page.get_by_role("heading", name="Kiitos, tilaus on vahvistettu").wait_for()
    shots("5-confirmed")
    person = subscribers.find(db, EMAIL)
    assert person is not None
    impact = topics.get_by_slug(db, "yhteisovaikuttavuus")
    assert impact is not None
    assert subscribers.count_recipients(db, [impact.id]) == 1

    page.get_by_role("link", name="Muuta tilauksiasi").click()
    page.get_by_role("heading", name="Uutiskirjeen asetukset").wait_for()
    assert EMAIL not in page.content()
    shots("6-preferences")

    # The unsubscribe link of a newsletter's footer, followed by the one button.
    key = token_key(db, served.settings.secret)
    page.goto(links.unsubscribe_url(served.settings, key, person["id"], impact.id))
    page.get_by_role("heading", name="Peru tilaus").wait_for()
    assert subscribers.count_recipients(db, [impact.id]) == 1  # opening changed nothing
    shots("7-unsubscribe")
    page.get_by_role("button", name="Peru tilaus").click()
    page.get_by_role("heading", name="Tilaus on peruttu").wait_for()
    shots("8-unsubscribed")
    assert subscribers.count_recipients(db, [impact.id]) == 0

    context.close()
    # The only failed request is the deliberately invalid form (400); no missing files.
    assert failures == [("POST", f"{served.url}/subscribe?lang=fi", 400)], failures
    assert all(path.stat().st_size > 5_000 for path in shots.taken)


# The focused element's outline colour and the background behind it (the first ancestor
# with an opaque background; the outline is drawn outside the element itself).
FOCUS_COLOURS = """() => {
  const el = document.activeElement;
  let behind = el.parentElement;
  while (behind && getComputedStyle(behind).backgroundColor === "rgba(0, 0, 0, 0)") {
    behind = behind.parentElement;
  }
  const style = getComputedStyle(el);
  return {
    tag: el.tagName + (el.className ? "." + el.className : ""),
    style: style.outlineStyle,
    width: parseFloat(style.outlineWidth),
    outline: style.outlineColor,
    behind: behind ? getComputedStyle(behind).backgroundColor : "rgb(255, 255, 255)",
  };
}"""


def _luminance(css: str) -> float:
    red, green, blue = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)


def _contrast(first: str, second: str) -> float:
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_keyboard_focus_is_visible(browser, served) -> None:
    """Every control reached by Tab shows a solid outline with 3:1 contrast (WCAG 1.4.11)."""
    page = browser.new_page(viewport={"width": 375, "height": 812})
    page.goto(f"{served.url}/subscribe")
    seen: list[str] = []
    for _ in range(30):  # skip link, language links, fields, checkboxes, select, button, footer
        page.keyboard.press("Tab")
        focus = page.evaluate(FOCUS_COLOURS)
        if focus["tag"] == "BODY":  # past the last control
            break
        seen.append(focus["tag"])
        assert focus["style"] == "solid" and focus["width"] >= 2, focus
        assert _contrast(focus["outline"], focus["behind"]) >= 3, focus
    assert len(seen) >= 10 and "BUTTON.button" in seen and "A.skip" in seen, seen
    page.close()
