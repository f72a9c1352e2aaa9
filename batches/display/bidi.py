"""Bidirectional control characters never reach a page as themselves (issue 27).

U+202A–U+202E (embeddings and overrides) and U+2066–U+2069 (isolates) reorder the text around them: a batch named
"invoice<U+202E>gpj.exe" reads "invoiceexe.jpg". Every HTML page shows each one as `[U+202E]` instead, in names,
cells and outputs alike; the marks (U+200E, U+200F, U+061C) change no order and stay. The data is not changed:
exports and JSON answers keep the characters, and the edit-and-retry form writes them as JSON escapes
(`InputsForm.for_execution`), so a retry sends what was there.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
CONTROL_BYTES = re.compile(rb"\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]")  # the same, in UTF-8


def escaped(text: str) -> str:
    """`text` with each bidirectional control shown as [U+XXXX]."""
    return CONTROLS.sub(lambda match: f"[U+{ord(match.group()):04X}]", text)


def _escaped_bytes(match: re.Match[bytes]) -> bytes:
    return escaped(match.group().decode()).encode()


class BidiEscapeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(response, "streaming", False) or not response.get("Content-Type", "").startswith("text/html"):
            return response
        if CONTROL_BYTES.search(response.content):
            response.content = CONTROL_BYTES.sub(_escaped_bytes, response.content)
            if response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
        return response
