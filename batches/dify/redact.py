"""Keeping the API key out of every message, log line and stored output: an app, a proxy or an error page may
echo it, whole or cut short."""

from __future__ import annotations

from typing import Any

MAX_ERROR_CHARS = 500
SECRET_FRAGMENT = 8  # the start of a secret this long counts as the secret (a message cut inside it)


def one_line(text: str, secret: str = "") -> str:
    """Hide the secret, collapse whitespace and NULs, drop what UTF-8 cannot encode, cut to MAX_ERROR_CHARS."""
    if len(secret) >= 6:  # a shorter "key" is no secret, and masking it would garble every message
        text = hide(text, secret)
    text = " ".join(text.replace("\0", " ").split()).encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def hide(text: str, secret: str) -> str:
    """`text` with the secret replaced by ***, and also its beginning where someone else cut the secret short."""
    text = text.replace(secret, "***")
    head = secret[:SECRET_FRAGMENT]
    start = text.find(head)
    while start >= 0:
        end = start + len(head)
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        text = text[:start] + "***" + text[end:]
        start = text.find(head, start + 3)
    return text


def masked(raw: bytes, secret: str) -> bytes:
    """An answer with the secret hidden, before any of it is cut into a message."""
    return raw.replace(secret.encode(), b"***") if len(secret) >= 6 else raw


def hidden_in(value: Any, secret: str) -> Any:
    """`value` (outputs: JSON) with the secret hidden in every string, keys included."""
    if isinstance(value, str):
        return hide(value, secret) if secret[:SECRET_FRAGMENT] in value else value
    if isinstance(value, list):
        return [hidden_in(item, secret) for item in value]
    if isinstance(value, dict):
        return {hidden_in(key, secret): hidden_in(item, secret) for key, item in value.items()}
    return value
