"""Strict JSON for what comes from outside (import files, upstream answers): what it accepts can be stored in a
PostgreSQL json column and exported as UTF-8 — no NaN or infinite numbers, no lone surrogates."""

from __future__ import annotations

import json
import math
import re
from typing import Any

SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class LoneSurrogate(ValueError):
    """A \\u escape names half a character."""


def loads(text: str) -> Any:
    """json.loads, refusing NaN, infinities and lone surrogates (ValueError); RecursionError when too deep."""
    value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    if SURROGATE_ESCAPE.search(text) and not encodable(value):
        raise LoneSurrogate("a \\u escape names half a character (a lone surrogate)")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (a scalar: 0), counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def encodable(value: Any) -> bool:
    """Whether the value's text is valid Unicode: what the database, the upstream and the exports need."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def value_of(raw: bytes | str) -> Any:
    """The strict JSON value in `raw` (UTF-8 only), or None when `raw` is not that."""
    try:
        return loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def object_of(raw: bytes | str) -> dict[str, Any] | None:
    """The strict JSON object in `raw`, or None when it is not one."""
    value = value_of(raw)
    return value if isinstance(value, dict) else None
