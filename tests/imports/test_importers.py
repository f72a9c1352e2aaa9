"""batches.imports.importers: every format and encoding imports; every bad file ends in a one-line ImportFileError."""

from __future__ import annotations

import json
import time
import zipfile
from datetime import date, datetime
from pathlib import Path
from types import GeneratorType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.utils.exceptions import IllegalCharacterError

from batches.dify.types import InputVariable
from batches.imports.importers import ImportFileError, detect_format, parse_file, preview
from tests.imports.hostile import (
    FORMATS,
    PROPERTY,
    TEXT_AND_LANGUAGE,
    VALID_XLSX,
    VALID_XLSX_MEMBERS,
    encodings,
    flip,
    json_lines,
    rows_or_error,
    table_text,
    zip_bytes,
)
from tests.xlsxfiles import xlsx_bytes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:openpyxl")


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


def write_xlsx(tmp_path: Path, rows: list[list[Any]], name: str = "in.xlsx") -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    workbook.save(path)
    return path


def write_jsonl(tmp_path: Path, objects: list[Any], name: str = "in.jsonl") -> Path:
    return write(tmp_path, name, "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects))


def read_rows(path: Path, **options: Any) -> list[dict[str, Any]]:
    return list(parse_file(path, **options).rows)


def import_error(path: Path, **options: Any) -> str:
    with pytest.raises(ImportFileError) as caught:
        read_rows(path, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


VARIABLES = [
    InputVariable("text", "Source text", required=True),
    InputVariable("lang", "Target language", required=False),
]


# --------------------------------------------------------------------------- CSV that imports


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030"), ("gbk", "gb18030")],
)
def test_csv_encoding_is_detected(tmp_path: Path, encoding: str, detected: str) -> None:
    path = write(tmp_path, "in.csv", "text,lang\n你好，世界,英语\nplain,中文\n", encoding)
    parsed = parse_file(path)
    assert parsed.encoding == detected
    assert parsed.columns == ["text", "lang"]
    assert list(parsed.rows) == [{"text": "你好，世界", "lang": "英语"}, {"text": "plain", "lang": "中文"}]


@pytest.mark.parametrize(
    ("content", "delimiter"),
    [
        ("text,lang\na,b\n", ","),
        ("text;lang\n1,5;b\nc,d;e\n", ";"),
        ("text\tlang\na, b\tc\n", "\t"),
        ("text|lang\na;b|c\n", "|"),
        ("text\nhello; world\n", ","),
    ],
)
def test_csv_delimiter_is_sniffed(tmp_path: Path, content: str, delimiter: str) -> None:
    parsed = parse_file(write(tmp_path, "in.csv", content))
    assert parsed.delimiter == delimiter
    assert all(len(row) == len(parsed.columns) for row in parsed.rows)


def test_csv_quoted_cells_keep_commas_quotes_and_newlines(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", 'text,lang\r\n"one, two","say ""hi"""\r\n"line 1\nline 2",x\r\n')
    assert read_rows(path) == [{"text": "one, two", "lang": 'say "hi"'}, {"text": "line 1\nline 2", "lang": "x"}]


def test_csv_values_stay_strings_and_header_cells_are_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", " text , n \n 007 ,1.50\n")
    assert read_rows(path) == [{"text": " 007 ", "n": "1.50"}]


@pytest.mark.parametrize("name", ["in.tsv", "in.txt", "IN.CSV"])
def test_tsv_and_txt_files_are_read_as_csv(tmp_path: Path, name: str) -> None:
    parsed = parse_file(write(tmp_path, name, "text\tlang\na\tb\n"))
    assert (parsed.format, list(parsed.rows)) == ("csv", [{"text": "a", "lang": "b"}])


def test_the_filename_argument_decides_the_format(tmp_path: Path) -> None:
    path = write(tmp_path, "upload-1234", '{"text": "a"}\n')
    assert parse_file(path, filename="rows.jsonl").format == "jsonl"


@pytest.mark.parametrize(
    "content",
    ["text\na\n\n\n", "text\na\n,\n  \n", "text\r\na\r\n\r\n", "\n\ntext\na\n"],
)
def test_csv_blank_leading_and_trailing_rows_are_ignored(tmp_path: Path, content: str) -> None:
    assert read_rows(write(tmp_path, "in.csv", content)) == [{"text": "a"}]


def test_csv_rows_are_yielded_lazily(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "a,b\n" + "1,2\n" * 5000 + "1,2,3\n")
    parsed = parse_file(path)
    assert isinstance(parsed.rows, GeneratorType)
    assert next(parsed.rows) == {"a": "1", "b": "2"}
    with pytest.raises(ImportFileError, match="^line 5002: expected 2 fields, found 3$"):
        list(parsed.rows)


def test_a_100k_row_csv_parses_in_a_few_seconds(tmp_path: Path) -> None:
    path = write(tmp_path, "big.csv", "text,lang\n" + "".join(f"sentence number {i},中文\n" for i in range(100_000)))
    started = time.perf_counter()
    count = sum(1 for _ in parse_file(path).rows)
    assert count == 100_000
    assert time.perf_counter() - started < 5


# --------------------------------------------------------------------------- XLSX and JSONL that import


def test_xlsx_keeps_numbers_and_writes_dates_as_iso_text(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path,
        [
            [" text ", "n", "x", "when", "at", None],
            ["中文", 3, 2.5, date(2024, 1, 5), datetime(2024, 1, 5, 9, 30), None],
            ["b", 4.0, None, None, None],
        ],
    )
    parsed = parse_file(path)
    assert (parsed.format, parsed.columns) == ("xlsx", ["text", "n", "x", "when", "at"])
    assert list(parsed.rows) == [
        {"text": "中文", "n": 3, "x": 2.5, "when": "2024-01-05", "at": "2024-01-05T09:30:00"},
        {"text": "b", "n": 4, "x": "", "when": "", "at": ""},
    ]


def test_xlsx_trailing_blank_rows_and_empty_cells_beyond_the_header_are_fine(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["text"], ["a", None, ""], [None], [None, None]])
    assert read_rows(path) == [{"text": "a"}]


def test_jsonl_keeps_nested_values_numbers_booleans_and_unicode(tmp_path: Path) -> None:
    objects = [
        {"text": "你好 🌍", "meta": {"tags": ["a", 1, None]}, "n": 1.5, "ok": True},
        {"text": "b", "meta": [], "n": -2, "ok": False},
    ]
    assert read_rows(write_jsonl(tmp_path, objects)) == objects


def test_jsonl_tolerates_a_bom_crlf_and_trailing_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "in.ndjson", '\ufeff{"text": "a"}\r\n{"text": "b"}\r\n\r\n  \n')
    assert read_rows(path) == [{"text": "a"}, {"text": "b"}]


def test_jsonl_in_the_export_format_imports_its_inputs(tmp_path: Path) -> None:
    base = {"status": "failed", "outputs": None, "error_type": "timeout", "error": "", "attempts": 2}
    objects = [
        {"id": 7, "index": 0, "inputs": {"text": "a", "n": 1}, **base},
        {"id": 8, "index": 1, "inputs": {"text": "b", "n": [2]}, **base},
    ]
    parsed = parse_file(write_jsonl(tmp_path, objects))
    assert parsed.columns == ["text", "n"]
    assert list(parsed.rows) == [{"text": "a", "n": 1}, {"text": "b", "n": [2]}]


# --------------------------------------------------------------------------- columns against the app


@pytest.mark.parametrize(
    "header",
    ["text,lang", "Source text,Target language", "Source text,lang", "text"],
)
def test_labels_are_accepted_in_place_of_names(tmp_path: Path, header: str) -> None:
    width = header.count(",") + 1
    path = write(tmp_path, "in.csv", header + "\n" + ",".join(["v"] * width) + "\n")
    parsed = parse_file(path, variables=VARIABLES)
    assert parsed.columns == ["text", "lang"][:width]
    assert list(parsed.rows) == [dict.fromkeys(["text", "lang"][:width], "v")]


def test_labels_map_jsonl_keys_and_xlsx_headers_too(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path, [{"Source text": "a"}])
    xlsx = write_xlsx(tmp_path, [["Source text"], ["a"]])
    assert read_rows(jsonl, variables=VARIABLES) == read_rows(xlsx, variables=VARIABLES) == [{"text": "a"}]


@pytest.mark.parametrize("variables", [None, VARIABLES])
def test_a_chat_app_accepts_a_query_column(tmp_path: Path, variables: list[InputVariable] | None) -> None:
    path = write(tmp_path, "in.csv", "query,text\nhi,a\n")
    assert read_rows(path, mode="chat", variables=variables) == [{"query": "hi", "text": "a"}]


@pytest.mark.parametrize("variables", [None, VARIABLES])
def test_a_chat_app_needs_a_query_column(tmp_path: Path, variables: list[InputVariable] | None) -> None:
    message = import_error(write(tmp_path, "in.csv", "text\na\n"), mode="chat", variables=variables)
    assert message.startswith("missing required column 'query'")


def test_without_known_variables_any_columns_are_accepted(tmp_path: Path) -> None:
    assert read_rows(write(tmp_path, "in.csv", "anything\nx\n")) == [{"anything": "x"}]


def test_preview_returns_the_first_rows(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["text"], *([f"r{i}"] for i in range(50))])
    parsed, rows = preview(path, limit=3)
    assert parsed.columns == ["text"]
    assert rows == [{"text": "r0"}, {"text": "r1"}, {"text": "r2"}]


# --------------------------------------------------------------------------- files that do not import

_EXPORT = {"id": 1, "index": 0, "status": "", "outputs": None, "error_type": "", "error": "", "attempts": 0}
BAD_EXPORT = "".join(json.dumps({**_EXPORT, "inputs": inputs}) + "\n" for inputs in ({"a": 1, "n": 1}, {"a": 2}))

BAD_FILES: list[tuple[str, str, str | bytes, str]] = [
    # (case, file name, content, expected message)
    ("empty", "in.csv", b"", "the file is empty"),
    ("only blank lines", "in.csv", "\n\n", "the file is empty: no header row"),
    ("header only", "in.csv", "text,lang\n", "the file has a header but no data rows"),
    ("header and blank rows", "in.csv", "text\n\n\n", "the file has a header but no data rows"),
    ("empty header cell", "in.csv", "text,,lang\na,b,c\n", "line 1: column 2 has no name in the header"),
    ("duplicate header", "in.csv", "text, text\na,b\n", "line 1: duplicate column 'text' in the header"),
    ("too many fields", "in.csv", "text,lang\na,b\nc,d,e\n", "line 3: expected 2 fields, found 3"),
    ("too few fields", "in.csv", "text,lang\na,b\nc\n", "line 3: expected 2 fields, found 1"),
    ("ragged after newline", "in.csv", 'text,lang\n"a\nb",c\nd\n', "line 4: expected 2 fields, found 1"),
    ("blank row in the middle", "in.csv", "text\na\n\nb\n", "line 3: blank line between data rows"),
    ("unclosed quote", "in.csv", 'text,lang\na,b\n"c,d\n', "line 3: malformed CSV"),
    ("undecodable bytes", "in.csv", b"text\nok\n\xff\xff\n", "line 3: byte 8 cannot be decoded as UTF-8 or GB18030"),
    ("bad bytes after a BOM", "in.csv", b"\xef\xbb\xbftext\n\xff\n", "line 2: byte 8 cannot be decoded as UTF-8"),
    ("binary", "in.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "the file looks binary (NUL byte at offset 8)"),
    ("xlsx named csv", "in.csv", b"PK\x03\x04\x14\x00", "the file looks binary (a zip archive, perhaps an XLSX"),
    ("UTF-16", "in.csv", "\ufefftext\na\n".encode("utf-16-le"), "the file is UTF-16 text"),
    ("unknown extension", "in.pdf", b"%PDF-1.4", "unsupported file type '.pdf': use CSV, XLSX or JSONL"),
    ("no extension", "upload", b"text\na\n", "unsupported file type 'upload'"),
    ("corrupt xlsx", "in.xlsx", b"PK\x03\x04 not really a zip", "not a valid XLSX file"),
    ("csv named xlsx", "in.xlsx", b"text\na\n", "not a valid XLSX file"),
    ("invalid json", "in.jsonl", '{"text": "a"}\n{"text": b}\n', "line 2: invalid JSON (Expecting value at column 10)"),
    ("non-object json", "in.jsonl", '{"text": "a"}\n["a"]\n', "line 2: expected a JSON object, found an array"),
    ("missing key", "in.jsonl", '{"text": "a", "n": 1}\n{"text": "b"}\n', "line 2: missing key(s) 'n'"),
    ("extra key", "in.jsonl", '{"text": "a"}\n{"text": "b", "n": 1}\n', "line 2: unexpected key(s) 'n'"),
    ("blank json line", "in.jsonl", '{"text": "a"}\n\n{"text": "b"}\n', "line 2: blank line between objects"),
    ("json NaN", "in.jsonl", '{"text": NaN}\n', "line 1: invalid JSON (NaN is not allowed)"),
    ("json binary", "in.jsonl", b'{"text": "a"}\n\x00\x01', "line 2: the file looks binary"),
    ("json bad utf-8", "in.jsonl", b'{"text": "\xff"}\n', "line 1: byte 10 of the line is not valid UTF-8"),
    ("json no keys", "in.jsonl", "{}\n", "line 1: the first object has no keys"),
    ("json too deep", "in.jsonl", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "line 1: JSON nested too deeply"),
    ("export key mismatch", "in.jsonl", BAD_EXPORT, "line 2: missing inputs key(s) 'n'"),
]


@pytest.mark.parametrize(("name", "content", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_a_bad_file_is_refused_with_a_one_line_message(
    tmp_path: Path, name: str, content: str | bytes, expected: str
) -> None:
    message = import_error(write(tmp_path, name, content))
    assert message.startswith(expected), message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("lang\nx\n", "missing required column 'text' (label 'Source text')"),
        ("text,colour\na,b\n", "unknown column(s) 'colour'; the app expects: 'text' (label 'Source text'), 'lang'"),
        ("text,Source text\na,b\n", "columns 'text' and 'Source text' both give variable 'text'"),
    ],
)
def test_columns_that_do_not_fit_the_app_are_refused(tmp_path: Path, content: str, expected: str) -> None:
    assert import_error(write(tmp_path, "in.csv", content), variables=VARIABLES).startswith(expected)


def test_an_unknown_column_message_lists_the_expected_ones(tmp_path: Path) -> None:
    message = import_error(write(tmp_path, "in.csv", "text,colour,size\na,b,c\n"), variables=VARIABLES)
    assert message == (
        "unknown column(s) 'colour', 'size'; "
        "the app expects: 'text' (label 'Source text'), 'lang' (label 'Target language')"
    )


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([["text"], ["a"], [None], ["b"]], "row 3: blank row between data rows"),
        ([["text", None, "lang"], ["a", "b", "c"]], "row 1: column B has no name in the header"),
        ([["text"], ["a", None, "x"]], "row 2: cell C2 is beyond the header's columns"),
        ([["text", "text"], ["a", "b"]], "row 1: duplicate column 'text' in the header"),
        ([["text"]], "the file has a header but no data rows"),
    ],
)
def test_a_bad_xlsx_sheet_names_the_row(tmp_path: Path, rows: list[list[Any]], expected: str) -> None:
    assert import_error(write_xlsx(tmp_path, rows)).startswith(expected)


def test_an_empty_xlsx_is_refused(tmp_path: Path) -> None:
    assert import_error(write_xlsx(tmp_path, [])) == "the file is empty: no header row"


def test_an_xlsx_that_unpacks_too_far_is_refused_before_opening(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * 2_000_000)
    assert path.stat().st_size < 20_000
    message = import_error(path, max_bytes=20_000)
    assert message.startswith("the XLSX file unpacks to 1.9 MB, over the")


@pytest.mark.parametrize("name", ["in.csv", "in.jsonl"])
def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, b"\xff" * 300)
    assert import_error(path, max_bytes=299) == "the file is 300 bytes, over the 299 bytes limit"


def test_the_size_limit_defaults_to_the_setting(tmp_path: Path, settings: Any) -> None:
    settings.BATCHES_MAX_UPLOAD_BYTES = 5
    assert import_error(write(tmp_path, "in.csv", "text\na\n")).startswith("the file is 7 bytes, over the")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("in.csv", "text\n1\n2\n3\n4\n", "line 4: more than 2 data rows (the limit is 2)"),
        ("in.jsonl", '{"a": 1}\n' * 4, "line 3: more than 2 data rows (the limit is 2)"),
    ],
)
def test_more_rows_than_the_limit_is_refused(tmp_path: Path, name: str, content: str, expected: str) -> None:
    assert import_error(write(tmp_path, name, content), max_rows=2) == expected


def test_the_row_limit_defaults_to_the_setting(tmp_path: Path, settings: Any) -> None:
    settings.BATCHES_MAX_ROWS = 1
    path = write_xlsx(tmp_path, [["text"], ["a"], ["b"]])
    assert import_error(path) == "row 3: more than 1 data rows (the limit is 1)"


def test_detect_format_is_case_insensitive() -> None:
    assert [detect_format(n) for n in ("a.CSV", "b.Xlsx", "c.NDJSON")] == ["csv", "xlsx", "jsonl"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_encoding_detection_is_right_across_chunk_boundaries(tmp_path: Path, monkeypatch: Any, chunk: int) -> None:
    monkeypatch.setattr("batches.imports.readers.CHUNK_BYTES", chunk)
    good = write(tmp_path, "good.csv", "text\n中文字符，好\n", "gb18030")
    assert (parse_file(good).encoding, read_rows(good)) == ("gb18030", [{"text": "中文字符，好"}])
    bad = write(tmp_path, "bad.csv", b"text\n" + "\u4e2d\u6587".encode() + b"\n\xff\n")
    assert import_error(bad).startswith("line 3: byte 12 cannot be decoded as UTF-8 or GB18030")


def test_the_demo_sample_imports(settings: Any) -> None:
    parsed = parse_file(Path(settings.BASE_DIR) / "samples" / "sample.csv")
    rows = list(parsed.rows)
    assert (parsed.columns, parsed.encoding, len(rows)) == (["text"], "utf-8", 200)
    assert any("\n" in r["text"] for r in rows) and any('"' in r["text"] for r in rows)


@pytest.mark.parametrize("row_key", [{}, {"row": 1}], ids=["older export", "export with row"])
def test_an_export_line_imports_its_inputs_with_or_without_the_row_key(tmp_path: Path, row_key: dict) -> None:
    line = {"id": 7, "index": 0, **row_key, "inputs": {"q": "你好"}, "status": "succeeded", "outputs": {"a": 1}}
    line |= {"error_type": "", "error": "", "attempts": 1}
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")

    parsed = parse_file(path)

    assert parsed.columns == ["q"] and list(parsed.rows) == [{"q": "你好"}]


def test_an_import_wider_than_an_export_can_hold_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.jsonl"
    path.write_text(json.dumps({f"c{i}": i for i in range(16_001)}) + "\n")

    with pytest.raises(ImportFileError, match=r"^16001 columns: at most 16000"):
        parse_file(path)


def test_a_50_mb_cell_is_refused_at_import_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("text,lang\nsmall,en\n")
        out.write('"' + "x" * (50 * 1024 * 1024) + '",en\n')

    with pytest.raises(ImportFileError) as caught:
        list(parse_file(path).rows)

    # Refused once 9 MB of the line are read (issue 27, L7): tests/imports/test_readers.py measures the memory.
    assert str(caught.value) == "line 3: longer than 9.0 MB (a value over the 1.0 MB limit per cell?)"


def test_the_cell_limit_is_a_setting_and_counts_utf8_bytes(tmp_path: Path, settings: Any) -> None:
    settings.BATCHES_MAX_CELL_BYTES = 300 * 1024
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "' + "中" * (110 * 1024) + '"}\n', encoding="utf-8")

    with pytest.raises(ImportFileError, match=r"line 1: the 'text' value is 0.3 MB, over the 0.3 MB limit"):
        list(parse_file(path).rows)


# --------------------------------------------------------------------------- any bytes: rows or an ImportFileError


@PROPERTY
@given(content=st.binary(max_size=2000), name=st.sampled_from(FORMATS))
def test_any_bytes_end_in_rows_or_an_import_error(content: bytes, name: str) -> None:
    rows_or_error(content, name)


@PROPERTY
@given(text=table_text, encoding=encodings, name=st.sampled_from(["in.csv", "in.jsonl"]), chat=st.booleans())
def test_any_table_like_text_ends_in_rows_or_an_import_error(text: str, encoding: str, name: str, chat: bool) -> None:
    content = text.encode(encoding, "replace")
    rows_or_error(content, name)
    rows_or_error(content, name, variables=TEXT_AND_LANGUAGE, mode="chat" if chat else "workflow")


@PROPERTY
@given(text=json_lines, variables=st.booleans())
def test_any_json_lines_end_in_rows_or_an_import_error(text: str, variables: bool) -> None:
    rows_or_error(text.encode(), "in.jsonl", variables=TEXT_AND_LANGUAGE if variables else None)


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
    rows_or_error(content, "in.xlsx", variables=TEXT_AND_LANGUAGE)
