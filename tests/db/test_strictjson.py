"""JSONL that strict JSON (batches.imports.strictjson) refuses or reads: deep nesting, NUL and lone surrogate escapes,
numbers out of range, each named by its line."""

from __future__ import annotations

import pytest

from batches.imports.importers import ImportFileError
from tests.imports.hostile import rows_or_error


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_jsonl_is_an_import_error_or_a_row(depth: int) -> None:
    line = '{"text": ' + "[" * depth + "]" * depth + "}\n"

    result = rows_or_error(line.encode(), "in.jsonl")

    assert isinstance(result, ImportFileError) and "nested too deeply" in str(result) or isinstance(result, list)


def test_very_deep_jsonl_names_the_line() -> None:
    content = b'{"text": "a"}\n{"text": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n"

    error = rows_or_error(content, "in.jsonl")

    assert isinstance(error, ImportFileError) and str(error).startswith("line 2: JSON nested too deeply")


def test_a_nul_escape_in_jsonl_is_text_like_any_other() -> None:
    rows = rows_or_error(b'{"text": "a\\u0000b"}\n', "in.jsonl")

    assert rows == [{"text": "a\x00b"}]


def test_a_lone_surrogate_escape_in_jsonl_is_refused() -> None:
    error = rows_or_error(b'{"text": "\\ud800"}\n', "in.jsonl")

    assert isinstance(error, ImportFileError) and str(error).startswith("line 1:")


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"9" * 5000])
def test_numbers_out_of_range_in_jsonl_are_refused(number: bytes) -> None:
    error = rows_or_error(b'{"text": ' + number + b"}\n", "in.jsonl")

    assert isinstance(error, ImportFileError) and str(error).startswith("line 1: invalid JSON")
