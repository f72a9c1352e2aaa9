"""The API key never reaches a message."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from batches.dify.redact import hidden_in, masked, one_line
from tests.dify.support import API_KEY


def test_one_line_hides_the_secret_and_keeps_500_chars() -> None:
    text = one_line(f"key {API_KEY}\nthen " + "x" * 1000, API_KEY)
    assert API_KEY not in text and "\n" not in text and len(text) == 500


def _copies(key: str) -> dict[str, str]:
    raw = key.encode()
    return {
        "upper case": key.upper(),
        "mixed case": key.swapcase(),
        "spaced": " ".join(key),
        "base64": base64.b64encode(raw).decode(),
        "base64 inside a header, offset 1": base64.b64encode(b"user:" + raw).decode(),
        "base64 inside a header, offset 2": base64.b64encode(b"Bearer " + raw + b"!").decode(),
        "url-safe base64": base64.urlsafe_b64encode(b"\xff\xfe" + raw).decode(),
        "url-encoded": "".join(f"%{byte:02X}" for byte in raw),
        "url-encoded, lower hex": "".join(f"%{byte:02x}" for byte in raw),
        "quoted": urllib.parse.quote(key, safe=""),
    }


@pytest.mark.parametrize("form", list(_copies(API_KEY)))
def test_every_copy_of_the_key_is_masked(form: str) -> None:
    copy = _copies(API_KEY)[form]
    text = f"echo [{copy}] done"

    shown = [one_line(text, API_KEY), masked(text.encode(), API_KEY).decode(), hidden_in({"out": [text]}, API_KEY)]

    assert copy not in shown[0] and copy not in shown[1] and copy not in shown[2]["out"][0]
    assert shown[0].startswith("echo [") and shown[0].endswith("] done")


def test_a_key_with_url_special_characters_is_masked_url_encoded() -> None:
    key = "app-s3cr3t/+key=="

    assert one_line("?key=" + urllib.parse.quote_plus(key), key) == "?key=***"


def test_text_without_the_key_is_left_alone() -> None:
    text = "HTTP 400 invalid_param: text is required in input form " + base64.b64encode(b"nothing here").decode()

    assert one_line(text, API_KEY) == text
