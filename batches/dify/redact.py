"""Keeping the API key out of every message, log line and stored output: an app, a proxy or an error page may
echo it, whole or cut short, in another case, spaced out, base64- or URL-encoded."""

from __future__ import annotations

import base64
import functools
import re
import urllib.parse
from typing import Any

MAX_ERROR_CHARS = 500
SECRET_FRAGMENT = 8  # the start of a secret this long counts as the secret (a message cut inside it)
MIN_SECRET = 6  # a shorter "key" is no secret, and masking it would garble every message
MIN_ENCODED = 8  # an encoded form shorter than this would mask ordinary text


def one_line(text: str, secret: str = "") -> str:
    """Hide the secret, collapse whitespace and NULs, drop what UTF-8 cannot encode, cut to MAX_ERROR_CHARS."""
    if len(secret) >= MIN_SECRET:
        text = hide(text, secret)
    text = " ".join(text.replace("\0", " ").split()).encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def hide(text: str, secret: str) -> str:
    """`text` with every copy of the secret replaced by *** (see `_source`)."""
    return _pattern(secret).sub("***", text) if len(secret) >= MIN_SECRET else text


def masked(raw: bytes, secret: str) -> bytes:
    """An answer with the secret hidden, before any of it is cut into a message."""
    return _bytes_pattern(secret).sub(b"***", raw) if len(secret) >= MIN_SECRET else raw


def hidden_in(value: Any, secret: str) -> Any:
    """`value` (outputs: JSON) with the secret hidden in every string, keys included."""
    if isinstance(value, str):
        return hide(value, secret)
    if isinstance(value, list):
        return [hidden_in(item, secret) for item in value]
    if isinstance(value, dict):
        return {hidden_in(key, secret): hidden_in(item, secret) for key, item in value.items()}
    return value


def _source(secret: str) -> str:
    """One regular expression for every copy, matched without regard to case: the secret (or its first
    SECRET_FRAGMENT characters and as much of the rest as follows, where someone cut it short), with any
    whitespace between its characters; its URL-encoded forms; and its base64 forms at each of the three
    alignments it can take inside a longer encoded text (standard and URL-safe alphabets)."""
    head, rest = secret[:SECRET_FRAGMENT], secret[SECRET_FRAGMENT:]
    spaced = r"\s*".join(map(re.escape, head))
    tail = ""
    for char in reversed(rest):
        tail = f"(?:\\s*{re.escape(char)}{tail})?"
    forms = {form for form in _encoded(secret) if len(form) >= MIN_ENCODED and form != secret}
    # The first alternative that matches wins: the longer encoded forms go first (a URL-encoded copy begins
    # with the secret's own first characters when they need no escaping).
    return "|".join([*(re.escape(form) for form in sorted(forms, key=len, reverse=True)), spaced + tail])


def _encoded(secret: str) -> list[str]:
    raw = secret.encode()
    forms = [
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
        "".join(f"%{byte:02X}" for byte in raw),  # every byte escaped (case does not matter: see _source)
    ]
    for offset in range(3):  # the characters that only the secret's own bits decide, after `offset` bytes
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start, end = -(-offset * 8 // 6), (offset + len(raw)) * 8 // 6
        forms += [encoded[start:end], encoded[start:end].replace("+", "-").replace("/", "_")]
    return forms


@functools.lru_cache(maxsize=32)
def _pattern(secret: str) -> re.Pattern[str]:
    return re.compile(_source(secret), re.IGNORECASE)


@functools.lru_cache(maxsize=32)
def _bytes_pattern(secret: str) -> re.Pattern[bytes]:
    return re.compile(_source(secret).encode(), re.IGNORECASE)
