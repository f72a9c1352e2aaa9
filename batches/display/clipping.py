"""Values shown on pages are clipped: an execution's inputs and outputs may be megabytes (the exports keep all)."""

from __future__ import annotations

import json
from typing import Any

PAGE_STRING_CHARS = 5_000  # one string inside a value
PAGE_ITEMS = 200  # items of one list or object
PAGE_VALUE_CHARS = 50_000  # the whole value, as shown
EDIT_CHARS = 200_000  # larger inputs are not offered for editing in a text box


def clip(value: Any) -> tuple[Any, bool]:
    """(a copy of `value` with long strings and long lists or objects cut, whether anything was cut)."""
    if isinstance(value, str) and len(value) > PAGE_STRING_CHARS:
        return value[:PAGE_STRING_CHARS] + f"… [{len(value) - PAGE_STRING_CHARS} more characters]", True
    if isinstance(value, list):
        items = [clip(item) for item in value[:PAGE_ITEMS]]
        more = [f"… [{len(value) - PAGE_ITEMS} more items]"] if len(value) > PAGE_ITEMS else []
        return [item for item, _ in items] + more, bool(more) or any(cut for _, cut in items)
    if isinstance(value, dict):
        pairs = [(key, clip(item)) for key, item in list(value.items())[:PAGE_ITEMS]]
        shown = {key: item for key, (item, _) in pairs}
        if len(value) > PAGE_ITEMS:
            shown["…"] = f"[{len(value) - PAGE_ITEMS} more keys]"
        return shown, len(value) > PAGE_ITEMS or any(cut for _, (_, cut) in pairs)
    return value, False


def clipped_json(value: Any) -> tuple[str, bool]:
    """Pretty JSON of the clipped value (itself cut at PAGE_VALUE_CHARS), and whether anything was cut."""
    shown, cut = clip(value)
    text = json.dumps(shown, indent=2, ensure_ascii=False)
    if len(text) > PAGE_VALUE_CHARS:
        text, cut = text[:PAGE_VALUE_CHARS] + "\n…", True
    return text, cut


def too_large_to_edit(value: Any) -> bool:
    return len(json.dumps(value, ensure_ascii=False)) > EDIT_CHARS
