"""batches.exports.batches: JSONL round-trips exactly; CSV and XLSX are spreadsheet-safe and keep numbers numeric."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from batches.exports.batches import FORMATS, attachment, content_type, export_chunks, file_name
from batches.imports.importers import parse_file
from batches.models import Attempt, BatchTask, Execution

TRICKY_INPUTS: list[dict[str, Any]] = [
    {"text": "你好，世界 🌍", "n": 3, "meta": {"tags": ["a", None], "deep": {"x": 1.5}}, "ok": True},
    {"text": 'quote " comma , newline \n tab \t', "n": -2.25, "meta": [], "ok": False},
    {"text": "", "n": 0, "meta": None, "ok": None},
]


def export_bytes(batch: BatchTask, fmt: str) -> bytes:
    return b"".join(export_chunks(batch, fmt))


def set_rows(batch: BatchTask, rows: list[dict[str, Any]]) -> list[Execution]:
    """Give the batch's executions (in index order) the fields in `rows`."""
    executions = list(batch.executions.order_by("index"))
    for execution, fields in zip(executions, rows, strict=True):
        for name, value in fields.items():
            setattr(execution, name, value)
        execution.save()
    return executions


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def read_xlsx(data: bytes, tmp_path: Path) -> list[tuple[Any, ...]]:
    path = tmp_path / "out.xlsx"
    path.write_bytes(data)
    sheet = load_workbook(path).worksheets[0]
    return list(sheet.iter_rows(values_only=True))


# --------------------------------------------------------------------------- JSONL


def test_jsonl_has_one_object_per_execution_in_index_order_with_exactly_the_contract_keys(make_batch: Any) -> None:
    batch = make_batch(rows=3)
    lines = export_bytes(batch, "jsonl").decode().splitlines()
    objects = [json.loads(line) for line in lines]
    assert [list(o) for o in objects] == [
        ["id", "index", "row", "inputs", "status", "outputs", "error_type", "error", "attempts"]
    ] * 3
    assert [o["index"] for o in objects] == [0, 1, 2]
    assert [o["row"] for o in objects] == [1, 2, 3]
    assert objects[0]["inputs"] == {"text": "row 0"}
    assert objects[0]["status"] == "pending"


def test_jsonl_writes_unicode_as_utf8_and_newline_line_ends(make_batch: Any) -> None:
    batch = make_batch(rows=1)
    set_rows(batch, [{"inputs": {"text": "你好"}}])
    data = export_bytes(batch, "jsonl")
    assert "你好".encode() in data
    assert data.endswith(b"}\n")
    assert b"\r" not in data


def test_jsonl_export_round_trips_exactly_through_import(make_batch: Any, tmp_path: Path) -> None:
    batch = make_batch(rows=3)
    set_rows(batch, [{"inputs": inputs} for inputs in TRICKY_INPUTS])
    path = tmp_path / "export.jsonl"
    path.write_bytes(export_bytes(batch, "jsonl"))
    parsed = parse_file(path)
    assert parsed.columns == ["text", "n", "meta", "ok"]
    assert list(parsed.rows) == TRICKY_INPUTS


def test_jsonl_reports_outputs_errors_and_counts_every_attempt(make_batch: Any) -> None:
    batch = make_batch(rows=2)
    first, second = set_rows(
        batch,
        [
            {"status": "succeeded", "outputs": {"summary": "短", "score": 0.5}},
            {"status": "failed", "error_type": "timeout", "error": "read timed out"},
        ],
    )
    for number, trigger in enumerate(["auto", "auto", "manual"], start=1):
        Attempt.objects.create(execution=second, number=number, trigger=trigger, outcome="failed")
    Attempt.objects.create(execution=first, number=1, outcome="succeeded")
    objects = [json.loads(line) for line in export_bytes(batch, "jsonl").splitlines()]
    assert objects[0] | {"id": 0} == {
        "id": 0,
        "index": 0,
        "row": 1,
        "inputs": {"text": "row 0"},
        "status": "succeeded",
        "outputs": {"summary": "短", "score": 0.5},
        "error_type": "",
        "error": "",
        "attempts": 1,
    }
    assert (objects[1]["error_type"], objects[1]["error"], objects[1]["attempts"]) == ("timeout", "read timed out", 3)
    assert [o["id"] for o in objects] == [first.pk, second.pk]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_export_contains_the_api_key(make_batch: Any, make_workflow: Any, fmt: str) -> None:
    batch = make_batch(rows=2, workflow=make_workflow(api_key="app-TOPSECRET-123"))
    assert b"TOPSECRET" not in export_bytes(batch, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_reading_the_executions_takes_a_fixed_number_of_queries(
    make_batch: Any, fmt: str, django_assert_max_num_queries: Any
) -> None:
    batch = make_batch(rows=30)
    for execution in batch.executions.all():
        Attempt.objects.create(execution=execution, number=1, outcome="failed")
    with django_assert_max_num_queries(2):
        export_bytes(batch, fmt)


# --------------------------------------------------------------------------- CSV


def test_csv_starts_with_a_bom_and_has_the_documented_columns(make_batch: Any) -> None:
    batch = make_batch(rows=2)
    set_rows(batch, [{"status": "succeeded", "outputs": {"summary": "s"}}, {"status": "failed", "error": "boom"}])
    data = export_bytes(batch, "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    cost = ["tokens", "elapsed_s", "latency_s", "price", "currency", "price_estimated"]
    assert read_csv(data) == [
        ["row", "text", "status", "output.summary", "error_type", "error", "attempts", *cost],
        ["1", "row 0", "succeeded", "s", "", "", "0", "0", "", "", "", "", "false"],
        ["2", "row 1", "failed", "", "", "boom", "0", "0", "", "", "", "", "false"],
    ]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+x", "'+x"),
        ("-x", "'-x"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("-3.5", "-3.5"),
        ("+8613800000000", "+8613800000000"),
        ("-1e5", "-1e5"),
        ("-", "'-"),
        ("\t1", "'\t1"),
        ("-3.5 kg", "'-3.5 kg"),
        (-3.5, "-3.5"),
        (-7, "-7"),
        ({"k": "=v"}, '{"k": "=v"}'),
        (["-a"], '["-a"]'),
        (True, "true"),
        (None, ""),
    ],
)
def test_csv_neutralises_formula_text_but_not_numbers(make_batch: Any, value: Any, written: str) -> None:
    batch = make_batch(rows=1)
    set_rows(batch, [{"inputs": {"text": value}, "outputs": {"answer": value}}])
    header, row = read_csv(export_bytes(batch, "csv"))
    assert row[header.index("text")] == written
    assert row[header.index("output.answer")] == written


def test_output_columns_are_the_union_over_all_rows(make_batch: Any) -> None:
    batch = make_batch(rows=3)
    set_rows(
        batch,
        [
            {"outputs": {"a": 1}},
            {"outputs": None},
            {"outputs": {"b": 2, "a": 3, "text": "out", "status": "x"}},
        ],
    )
    header, *rows = read_csv(export_bytes(batch, "csv"))
    assert header[:10] == [
        "row", "text", "status", "output.a", "output.b", "output.text", "output.status", "error_type", "error",
        "attempts",
    ]  # fmt: skip
    assert [r[3:7] for r in rows] == [["1", "", "", ""], ["", "", "", ""], ["3", "2", "out", "x"]]


def test_input_columns_follow_the_first_row_and_missing_values_are_empty(make_batch: Any) -> None:
    batch = make_batch(rows=2)
    set_rows(batch, [{"inputs": {"b": "1", "a": "2"}}, {"inputs": {"a": "3", "c": "4"}}])
    header, *rows = read_csv(export_bytes(batch, "csv"))
    assert header[:4] == ["row", "b", "a", "c"]
    assert [r[1:4] for r in rows] == [["1", "2", ""], ["", "3", "4"]]


def test_a_large_csv_export_arrives_in_several_chunks(make_batch: Any) -> None:
    batch = make_batch(rows=3000)
    chunks = list(export_chunks(batch, "csv"))
    assert len(chunks) > 1
    assert len(read_csv(b"".join(chunks))) == 3001


# --------------------------------------------------------------------------- XLSX


def test_xlsx_keeps_numbers_numeric_and_writes_text_as_text_cells(make_batch: Any, tmp_path: Path) -> None:
    batch = make_batch(rows=2)
    set_rows(
        batch,
        [
            {"inputs": {"text": '=HYPERLINK("http://x")'}, "outputs": {"score": -3.5, "n": 7}},
            {"inputs": {"text": "你好"}, "outputs": {"score": "-1", "n": {"k": 1}}},
        ],
    )
    rows = [row[:8] for row in read_xlsx(export_bytes(batch, "xlsx"), tmp_path)]
    assert rows == [
        ("row", "text", "status", "output.score", "output.n", "error_type", "error", "attempts"),
        (1, '=HYPERLINK("http://x")', "pending", -3.5, 7, None, None, 0),
        (2, "你好", "pending", "-1", '{"k": 1}', None, None, 0),
    ]
    path = tmp_path / "out.xlsx"
    sheet = load_workbook(path).worksheets[0]
    assert [sheet["B2"].data_type, sheet["D3"].data_type, sheet["D2"].data_type] == ["s", "s", "n"]


def test_xlsx_replaces_characters_excel_cannot_store(make_batch: Any, tmp_path: Path) -> None:
    batch = make_batch(rows=1)
    set_rows(batch, [{"inputs": {"text": "bell\x07end"}}])
    assert read_xlsx(export_bytes(batch, "xlsx"), tmp_path)[1][1] == "bell\ufffdend"


def test_xlsx_export_removes_its_temporary_file(make_batch: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    chunks = export_chunks(make_batch(rows=2), "xlsx")
    assert next(chunks).startswith(b"PK")
    assert list(tmp_path.glob("batch-export-*"))
    list(chunks)
    assert not list(tmp_path.glob("batch-export-*"))


# --------------------------------------------------------------------------- names and types


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("csv", "text/csv; charset=utf-8"),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("jsonl", "application/x-ndjson; charset=utf-8"),
    ],
)
def test_content_type_per_format(fmt: str, expected: str) -> None:
    assert content_type(fmt) == expected


@pytest.mark.parametrize(("name", "expected"), [("My batch!", "-my-batch.csv"), ("中文 报告", "-中文-报告.csv")])
def test_file_name_has_the_batch_id_and_a_slug(make_batch: Any, name: str, expected: str) -> None:
    batch = make_batch(rows=0, name=name)
    assert file_name(batch, "csv") == f"batch-{batch.pk}{expected}"


def test_an_unknown_format_is_refused(make_batch: Any) -> None:
    with pytest.raises(ValueError, match="unknown export format 'pdf'"):
        export_chunks(make_batch(rows=0), "pdf")


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("batch-1-report.csv", 'attachment; filename="batch-1-report.csv"'),
        (
            "batch-1-中文.csv",
            "attachment; filename=\"batch-1-__.csv\"; filename*=UTF-8''batch-1-%E4%B8%AD%E6%96%87.csv",
        ),
    ],
)
def test_attachment_keeps_non_ascii_names_in_filename_star(name: str, header: str) -> None:
    assert attachment(name) == header


def test_export_download_keeps_a_chinese_batch_name(login: Any, make_batch: Any) -> None:

    batch = make_batch(rows=1, name="天气 报告")

    response = login().get(reverse("batches:batch_export", args=[batch.pk, "csv"]))

    assert "filename*=UTF-8''batch-" in response["Content-Disposition"]
    assert "%E5%A4%A9%E6%B0%94-%E6%8A%A5%E5%91%8A.csv" in response["Content-Disposition"]


def test_xlsx_freezes_its_header_and_sizes_columns_to_their_text(make_batch: Any, tmp_path: Path) -> None:
    batch = make_batch(rows=2)
    set_rows(batch, [{"inputs": {"text": "a" * 30}, "outputs": {"answer": "b" * 500}}, {"inputs": {"text": "x"}}])
    path = tmp_path / "out.xlsx"
    path.write_bytes(export_bytes(batch, "xlsx"))

    sheet = load_workbook(path).worksheets[0]

    assert sheet.freeze_panes == "B2"
    widths = {cell.value: sheet.column_dimensions[cell.column_letter].width for cell in sheet[1]}
    assert widths["row"] == 8 and widths["text"] == 32 and widths["output.answer"] == 60


def test_tables_carry_each_rows_cost_and_latency_dify_price_or_an_estimate_marked_so(make_batch: Any) -> None:
    batch = make_batch(rows=2)
    batch.workflow.price_per_1k_tokens = Decimal("0.002")
    batch.workflow.save()
    Execution.objects.filter(batch=batch, index=0).update(
        total_tokens=500, elapsed=1.25, latency=1.5, price=Decimal("0.0007"), currency="USD"
    )
    Execution.objects.filter(batch=batch, index=1).update(total_tokens=1000, latency=2.0)

    header, first, second = read_csv(export_bytes(batch, "csv"))

    columns = ["tokens", "elapsed_s", "latency_s", "price", "currency", "price_estimated"]
    assert [dict(zip(header, row, strict=True))[c] for row in (first, second) for c in columns] == [
        "500", "1.25", "1.5", "0.0007", "USD", "false",
        "1000", "", "2.0", "0.002", "", "true",
    ]  # fmt: skip
    assert '"price"' not in export_bytes(batch, "jsonl").decode()  # JSONL keeps design.md's keys


def test_an_xlsx_export_wider_than_excel_puts_the_extra_output_keys_in_one_json_column(
    make_batch: Any, tmp_path: Path
) -> None:
    batch = make_batch(rows=1)
    outputs = {f"k{i}": i for i in range(17_000)}
    Execution.objects.filter(batch=batch).update(outputs=outputs)
    path = tmp_path / "wide.xlsx"
    path.write_bytes(b"".join(export_chunks(batch, "xlsx")))

    sheet = load_workbook(path, read_only=True).worksheets[0]
    header, row = (list(values) for values in sheet.iter_rows(values_only=True))

    assert len(header) == 16_384
    more = header.index("output.more")
    assert json.loads(row[more]) == {f"k{i}": i for i in range(more - 3, 17_000)}
    assert row[header.index("output.k0")] == 0


def test_the_xlsx_export_stays_readable_with_text_cells(make_batch: Any) -> None:
    batch = make_batch(rows=1)
    Execution.objects.filter(batch=batch).update(inputs={"text": "=1+1"})

    content = b"".join(export_chunks(batch, "xlsx"))

    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "=1+1" in sheet
