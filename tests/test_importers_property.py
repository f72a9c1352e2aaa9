"""Hostile import files: whatever the bytes, an importer ends in rows or in ImportFileError, never another error.

Property tests (hypothesis) for each format, then explicit cases: zip bombs, deep nesting, huge cells, NUL bytes,
invalid UTF-8.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.utils.exceptions import IllegalCharacterError

from batches.dify.types import InputVariable
from batches.imports.importers import ImportFileError, parse_file
from tests.xlsxfiles import xlsx_bytes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:openpyxl")

FORMATS = ["in.csv", "in.jsonl", "in.xlsx"]
VARIABLES = [InputVariable("text", "Source text", required=True), InputVariable("lang", "Language")]
PROPERTY = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = {"max_bytes": 1024 * 1024, "max_rows": 1000}


def rows_or_error(content: bytes, name: str, **options: Any) -> list[dict[str, Any]] | ImportFileError:
    """The rows, or the ImportFileError; any other exception fails the test."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        try:
            rows = list(parse_file(path, **{**LIMITS, **options}).rows)
        except ImportFileError as error:
            assert "\n" not in str(error)
            return error
    for row in rows:  # what imports can be stored (PostgreSQL json), sent upstream and exported as UTF-8
        json.dumps(row, allow_nan=False, ensure_ascii=False).encode()
    return rows


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


VALID_XLSX = xlsx_bytes([["text", "lang"], ["hello", "fr"], [1.5, None], ["=1+1", "x"]])
VALID_XLSX_MEMBERS = {info.filename: zipfile.ZipFile(io.BytesIO(VALID_XLSX)).read(info) for info in
                      zipfile.ZipFile(io.BytesIO(VALID_XLSX)).infolist()}  # fmt: skip
SHEET = "xl/worksheets/sheet1.xml"

# Text that looks like the formats, so that the parsers get past their first checks.
table_text = st.text(alphabet=st.sampled_from(list("text,lang;\t|\"'\n\r a\x00é中\ufeff\u2028")), max_size=300)
json_lines = st.lists(
    st.one_of(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps(value, allow_nan=True)),
        st.text(max_size=40),
    ),
    max_size=8,
).map("\n".join)
encodings = st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16", "latin-1"])


def flip(data: bytes, positions: list[int], values: list[int]) -> bytes:
    mutated = bytearray(data)
    for position, value in zip(positions, values, strict=False):
        mutated[position % len(mutated)] = value
    return bytes(mutated)


# ----------------------------------------------------------------------------------------------- properties


@PROPERTY
@given(content=st.binary(max_size=2000), name=st.sampled_from(FORMATS))
def test_any_bytes_end_in_rows_or_an_import_error(content: bytes, name: str) -> None:
    rows_or_error(content, name)


@PROPERTY
@given(text=table_text, encoding=encodings, name=st.sampled_from(["in.csv", "in.jsonl"]), chat=st.booleans())
def test_any_table_like_text_ends_in_rows_or_an_import_error(text: str, encoding: str, name: str, chat: bool) -> None:
    content = text.encode(encoding, "replace")
    rows_or_error(content, name)
    rows_or_error(content, name, variables=VARIABLES, mode="chat" if chat else "workflow")


@PROPERTY
@given(text=json_lines, variables=st.booleans())
def test_any_json_lines_end_in_rows_or_an_import_error(text: str, variables: bool) -> None:
    rows_or_error(text.encode(), "in.jsonl", variables=VARIABLES if variables else None)


@PROPERTY
@given(positions=st.lists(st.integers(min_value=0), min_size=1, max_size=6), values=st.lists(st.integers(0, 255)))
def test_a_damaged_xlsx_ends_in_rows_or_an_import_error(positions: list[int], values: list[int]) -> None:
    rows_or_error(flip(VALID_XLSX, positions, values), "in.xlsx")


@PROPERTY
@given(member=st.sampled_from(sorted(VALID_XLSX_MEMBERS)), content=st.binary(max_size=600) | table_text.map(str.encode))
def test_an_xlsx_with_one_member_replaced_ends_in_rows_or_an_import_error(member: str, content: bytes) -> None:
    rows_or_error(zip_bytes({**VALID_XLSX_MEMBERS, member: content}), "in.xlsx")


@PROPERTY
@given(cells=st.lists(st.lists(st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=30)), max_size=4),
                      max_size=6))  # fmt: skip
def test_any_workbook_ends_in_rows_or_an_import_error(cells: list[list[Any]]) -> None:
    try:
        content = xlsx_bytes(cells)
    except IllegalCharacterError:  # openpyxl refuses control characters itself
        return
    rows_or_error(content, "in.xlsx", variables=VARIABLES)


# ----------------------------------------------------------------------------------------------- explicit cases


def understated(data: bytes, member: str) -> bytes:
    """The archive with `member`'s uncompressed size declared as 10 bytes: a bomb that lies about its size."""
    patched = bytearray(data)
    central = patched.index(b"PK\x01\x02")
    while not patched[central + 46 :].startswith(member.encode()):
        central = patched.index(b"PK\x01\x02", central + 4)
    patched[central + 24 : central + 28] = (10).to_bytes(4, "little")
    return bytes(patched)


def test_an_xlsx_bomb_is_refused_from_its_declared_size() -> None:
    content = zip_bytes({**VALID_XLSX_MEMBERS, SHEET: b"<a>" + b" " * 50_000_000 + b"</a>"})

    error = rows_or_error(content, "in.xlsx", max_bytes=200_000)

    assert isinstance(error, ImportFileError) and "unpacks to" in str(error)


def test_an_xlsx_bomb_that_lies_about_its_size_is_refused() -> None:
    sheet = VALID_XLSX_MEMBERS[SHEET].replace(
        b"</sheetData>", b"<row r='9'>" + b" " * 5_000_000 + b"</row></sheetData>"
    )
    content = understated(zip_bytes({**VALID_XLSX_MEMBERS, SHEET: sheet}), SHEET)
    began = time.monotonic()

    error = rows_or_error(content, "in.xlsx")

    assert isinstance(error, ImportFileError)
    assert time.monotonic() - began < 5


def test_an_xml_entity_bomb_in_a_sheet_is_refused() -> None:
    entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY e0 "boom">{entities}]><worksheet>&e9;</worksheet>'
    content = zip_bytes({**VALID_XLSX_MEMBERS, SHEET: bomb.encode()})
    began = time.monotonic()

    error = rows_or_error(content, "in.xlsx")

    assert isinstance(error, ImportFileError)
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("value", [b"inf", b"-inf", b"nan", b"1e400"])
def test_a_number_cell_out_of_range_is_refused(value: bytes) -> None:
    sheet = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>text</t></is></c></row>'
        b'<row r="2"><c r="A2"><v>' + value + b"</v></c></row></sheetData></worksheet>"
    )

    error = rows_or_error(zip_bytes({**VALID_XLSX_MEMBERS, SHEET: sheet}), "in.xlsx")

    assert isinstance(error, ImportFileError) and str(error).startswith("row 2:")


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_jsonl_is_an_import_error_or_a_row(depth: int) -> None:
    line = '{"text": ' + "[" * depth + "]" * depth + "}\n"

    result = rows_or_error(line.encode(), "in.jsonl")

    assert isinstance(result, ImportFileError) and "nested too deeply" in str(result) or isinstance(result, list)


def test_very_deep_jsonl_names_the_line() -> None:
    content = b'{"text": "a"}\n{"text": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n"

    error = rows_or_error(content, "in.jsonl")

    assert isinstance(error, ImportFileError) and str(error).startswith("line 2: JSON nested too deeply")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("in.csv", b"text\n" + b"x" * 5_000_000 + b"\n"),
        ("in.csv", b'text\n"' + b"x" * 5_000_000 + b'"\n'),
        ("in.jsonl", b'{"text": "' + b"x" * 5_000_000 + b'"}\n'),
    ],
)
def test_a_huge_single_cell_imports_when_the_cell_limit_allows_it(name: str, content: bytes, settings: Any) -> None:
    settings.BATCHES_MAX_CELL_BYTES = 6_000_000  # the default (1 MiB) refuses it: tests/test_large_values.py
    rows = rows_or_error(content, name, max_bytes=10_000_000)

    assert isinstance(rows, list) and len(rows[0]["text"]) == 5_000_000


def test_a_huge_single_xlsx_cell_imports() -> None:
    content = xlsx_bytes([["text"], ["x" * 32_000]])

    rows = rows_or_error(content, "in.xlsx")

    assert isinstance(rows, list) and len(rows[0]["text"]) == 32_000


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("in.csv", b"text\nab\x00c\n", "the file looks binary (NUL byte at offset 7)"),
        ("in.jsonl", b'{"text": "a"}\n{"text": "\x00"}\n', "line 2: the file looks binary (NUL byte)"),
        ("in.csv", b"text\nab\xffc\n", "line 2: byte 7 cannot be decoded as UTF-8 or GB18030"),
        ("in.csv", b"\xef\xbb\xbftext\n\xff\n", "line 2: byte 8 cannot be decoded as UTF-8"),
        ("in.jsonl", b'{"text": "a"}\n{"text": "\xff"}\n', "line 2: byte 10 of the line is not valid UTF-8"),
        ("in.jsonl", b'{"text": "\xed\xa0\x80"}\n', "line 1: byte 10 of the line is not valid UTF-8"),
    ],
)
def test_nul_bytes_and_invalid_utf8_name_the_place(name: str, content: bytes, expected: str) -> None:
    error = rows_or_error(content, name)

    assert isinstance(error, ImportFileError) and str(error).startswith(expected)


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
