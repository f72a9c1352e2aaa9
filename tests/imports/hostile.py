"""Hostile import files for the importers' tests: one way to read any bytes (rows, or the ImportFileError), a valid
XLSX to damage, and hypothesis strategies for text that looks like the formats."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from batches.dify.types import InputVariable
from batches.imports.importers import ImportFileError, parse_file
from tests.xlsxfiles import xlsx_bytes

FORMATS = ["in.csv", "in.jsonl", "in.xlsx"]


TEXT_AND_LANGUAGE = [InputVariable("text", "Source text", required=True), InputVariable("lang", "Language")]


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
