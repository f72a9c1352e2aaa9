"""The changed words of two texts, as escaped HTML for the compare page: words only in A in <del>, words only in B
in <ins>, and long unchanged stretches shortened to "…" so that a cell shows where the texts differ.

Chinese and Japanese have no spaces between words, so each of their characters counts as a word.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

MAX_CHARS = 1_000  # of each text compared: a diff costs up to the square of its words (15 ms at worst here)
CONTEXT = 8  # unchanged tokens kept beside a change (about four words and their spaces)
LONG_STRETCH = 80  # characters of an unchanged stretch past which it is shortened
MAX_SHOWN = 1_000  # characters of HTML shown per side, about six lines of a cell
GAP = "…"
CJK = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff"  # kana and Han characters: one word each
TOKEN = re.compile(rf"[{CJK}]|[^\W{CJK}]+|\s+|[^\w\s]")


def word_diff(a: str, b: str) -> tuple[SafeString, SafeString]:
    """A's and B's text with what changed marked; texts past MAX_CHARS are compared on their beginning only."""
    words_a, words_b = _tokens(a), _tokens(b)
    left: list[str] = []
    right: list[str] = []
    # autojunk (words in over 1% of a long text do not start a match) keeps repetitive texts from costing seconds
    opcodes = SequenceMatcher(None, words_a, words_b).get_opcodes()
    for n, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            same = _shortened(words_a[i1:i2], first=n == 0, last=n == len(opcodes) - 1)
            left.append(same)
            right.append(same)
            continue
        if i2 > i1:
            left.append(f"<del>{escape(''.join(words_a[i1:i2]))}</del>")
        if j2 > j1:
            right.append(f"<ins>{escape(''.join(words_b[j1:j2]))}</ins>")
    return _joined(left, len(a) > MAX_CHARS), _joined(right, len(b) > MAX_CHARS)


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text[:MAX_CHARS])


def _shortened(tokens: list[str], *, first: bool, last: bool) -> str:
    """An unchanged stretch: whole when short, else CONTEXT tokens on the side(s) that touch a change."""
    text = "".join(tokens)
    if len(text) <= LONG_STRETCH or len(tokens) <= 2 * CONTEXT + 1:
        return escape(text)
    head = [] if first else tokens[:CONTEXT]
    tail = [] if last else tokens[-CONTEXT:]
    return escape("".join(head)) + GAP + escape("".join(tail))


def _joined(parts: list[str], cut: bool) -> SafeString:
    """The parts, stopped once MAX_SHOWN characters are shown (between parts, never inside a tag)."""
    shown, size = [], 0
    for part in parts:
        if size > MAX_SHOWN:
            cut = True
            break
        shown.append(part)
        size += len(part)
    return mark_safe("".join(shown) + (GAP if cut else ""))  # noqa: S308 - every text above went through escape()
