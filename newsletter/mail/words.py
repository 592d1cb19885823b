"""RFC 2047 encoded words for display names: the words ``email.header.Header`` writes for a
one-line name, at a fraction of its cost (it re-encodes the name once per character).

Every word is at most 75 characters and alone on a folded line of at most 76, and no word
splits a character, so a name of any script or length folds into short lines that decode
back to the name (RFC 2047 section 6.2: the folds between adjacent words are not text).
"""

from __future__ import annotations

import binascii
import string

LINE = 76  # characters of a line with encoded words (RFC 2047 section 2)
# Room for encoded text in a word: the first leaves room for the longest header name it
# follows ("Reply-To: "), later ones for the fold's space; 12 is "=?utf-8?b?" and "?=".
_FIRST_ROOM = LINE - len("Reply-To: ") - 12
_LATER_ROOM = LINE - 1 - 12
_Q_PLAIN = b"-!*+/" + (string.ascii_letters + string.digits).encode("ascii")
_Q_TABLE = [chr(o) if o in _Q_PLAIN else "_" if o == 32 else f"={o:02X}" for o in range(256)]
_Q_ONE_CHAR = _Q_PLAIN + b" "  # every other octet is "=XX" in q


def _b_word(raw: bytes) -> str:
    return f"=?utf-8?b?{binascii.b2a_base64(raw, newline=False).decode('ascii')}?="


def _b_words(raw: bytes) -> list[str]:
    # Room is counted in octets (3 make 4 characters), backed off to a character's first octet.
    words, start, room = [], 0, _FIRST_ROOM // 4 * 3
    while start < len(raw):
        end = min(start + room, len(raw))
        while end < len(raw) and raw[end] & 0xC0 == 0x80:  # a UTF-8 continuation octet
            end -= 1
        words.append(_b_word(raw[start:end]))
        start, room = end, _LATER_ROOM // 4 * 3
    return words


def _q_words(text: str) -> list[str]:
    # ``text`` is already q-encoded: cut between escapes, never before a continuation octet.
    words, start, room = [], 0, _FIRST_ROOM
    while start < len(text):
        end = min(start + room, len(text))
        if end < len(text):
            if text[end - 1] == "=":
                end -= 1
            elif text[end - 2] == "=":
                end -= 2
            while text[end] == "=" and text[end + 1] in "89AB":  # =80 to =BF
                end -= 3
        words.append(f"=?utf-8?q?{text[start:end]}?=")
        start, room = end, _LATER_ROOM
    return words


def encoded(text: str) -> str:
    """``text`` as RFC 2047 encoded words, one per folded line, each at most 75 characters
    and never splitting a character: the words ``email.header.Header`` writes for it after a
    "Reply-To: ", at a fraction of the cost. ``text`` must be on one line (``one_line``).

    Like Header, it picks whichever of b and q is shorter for the whole text and fills each
    word as far as it goes."""
    raw = text.encode("utf-8")
    b_length = (len(raw) + 2) // 3 * 4
    q_length = len(raw) + 2 * len(raw.translate(None, _Q_ONE_CHAR))
    if b_length < q_length:
        words = [_b_word(raw)] if b_length <= _FIRST_ROOM else _b_words(raw)
    else:
        q_text = raw.decode("latin-1").translate(_Q_TABLE)
        words = [f"=?utf-8?q?{q_text}?="] if q_length <= _FIRST_ROOM else _q_words(q_text)
    return "\r\n ".join(words)
