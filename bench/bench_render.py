"""CPU per message of addressing one edition to one recipient (issue 17).

The edition is the send benchmark's (``bench_send``: a ~40 KB MJML-shaped page plus its text
part, ~54 KB as a message). Each figure is microseconds per message over ``COUNT`` messages,
five runs, min and median:

- links: the three per-recipient links, one function each, and ``recipient_links``;
- ``render`` + the three links, and ``smtp.dot_stuffed`` of it + ``b".\\r\\n"`` (the
  sender's path before ``render_stuffed``);
- ``render_stuffed`` alone, and with ``recipient_links``;
for an ASCII recipient name and a non-ASCII one (RFC 2047 encoded words).

Each message is dropped before the next is made: depending on where the allocator placed
it, glibc may give the ~54 KB back to the system and fault it in again for the next one,
~10 us a message that shifts between runs (raising ``MALLOC_TRIM_THRESHOLD_`` removes it).

Run: ``python -m bench.bench_render`` (or ``make bench`` for every benchmark).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench.bench_send import SETTINGS, TEXT, edition_html
from newsletter import links
from newsletter.mail import message
from newsletter.mail.smtp import dot_stuffed

COUNT = 5000
RUNS = 5
KEY = b"k" * 32
NAMES = {"ASCII name": "Lukija {}", "non-ASCII name": "Mäkelä-Öhman Päivi {}"}
LINKS = links.recipient_links(SETTINGS, KEY, 12345, 1)


def _edition() -> message.EditionMessage:
    return message.EditionMessage(
        SETTINGS,
        subject="Vaikuttavuus: syksyn hankkeet",
        html=edition_html(),
        text=TEXT,
        list_id=message.list_id(SETTINGS, ["vaikuttavuus"]),
    )


def _per_message_us(work: Callable[[int], object]) -> tuple[float, float]:
    """(min, median) microseconds per call over RUNS runs of COUNT calls."""
    for number in range(200):  # warm caches
        work(number)
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for number in range(COUNT):
            work(number)
        samples.append((time.perf_counter() - start) / COUNT * 1e6)
    return min(samples), statistics.median(samples)


def _report(label: str, work: Callable[[int], object]) -> None:
    low, median = _per_message_us(work)
    print(f"  {label:<46} min {low:6.1f} us   median {median:6.1f} us", flush=True)


def _old_links(number: int) -> tuple[str, str, str]:
    return (
        links.unsubscribe_url(SETTINGS, KEY, number, 1),
        links.preferences_url(SETTINGS, KEY, number),
        links.unsubscribe_mailto(SETTINGS, KEY, number, 1),
    )


def _new_links(number: int) -> tuple[str, str, str]:
    return links.recipient_links(SETTINGS, KEY, number, 1)


def main() -> None:
    edition = _edition()
    size = len(edition.render(to_email="a@example.org", unsubscribe_url="x")[0])
    print(f"edition: {size // 1000} KB message; {COUNT} messages a run, {RUNS} runs")
    _report("links, three functions", _old_links)
    _report("links, recipient_links", _new_links)
    for label, pattern in NAMES.items():
        print(f"{label} ({pattern.format(1)!r}):")

        def render(number: int, pattern: str = pattern) -> bytes:
            unsub, prefs, mailto = _old_links(number)
            data, _ = edition.render(
                to_email=f"lukija{number}@example.org",
                to_name=pattern.format(number),
                unsubscribe_url=unsub,
                preferences_url=prefs,
                unsubscribe_mailto=mailto,
            )
            return data

        def stuffed_before(number: int, render: Callable[[int], bytes] = render) -> bytes:
            return dot_stuffed(render(number)) + b".\r\n"

        def stuffed_now(number: int, pattern: str = pattern) -> bytes:
            unsub, prefs, mailto = _new_links(number)
            data, _ = edition.render_stuffed(
                to_email=f"lukija{number}@example.org",
                to_name=pattern.format(number),
                unsubscribe_url=unsub,
                preferences_url=prefs,
                unsubscribe_mailto=mailto,
            )
            return data

        def stuffed_alone(number: int, pattern: str = pattern) -> bytes:
            data, _ = edition.render_stuffed(
                to_email=f"lukija{number}@example.org",
                to_name=pattern.format(number),
                unsubscribe_url=LINKS[0],
                preferences_url=LINKS[1],
                unsubscribe_mailto=LINKS[2],
            )
            return data

        _report("render + three links", render)
        _report("smtp.dot_stuffed(render) + dot, three links", stuffed_before)
        _report("render_stuffed alone", stuffed_alone)
        _report("render_stuffed + recipient_links", stuffed_now)


if __name__ == "__main__":
    main()
