"""The API key never reaches a message."""

from __future__ import annotations

from batches.dify.redact import one_line
from tests.dify.support import API_KEY


def test_one_line_hides_the_secret_and_keeps_500_chars() -> None:
    text = one_line(f"key {API_KEY}\nthen " + "x" * 1000, API_KEY)
    assert API_KEY not in text and "\n" not in text and len(text) == 500
