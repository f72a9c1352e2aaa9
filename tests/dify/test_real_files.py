"""Every recorded Dify answer about files (tests/dify/recordings/files, the project's copy),
replayed over a socket: through the client alone, and through a one-row batch (import, uploads, run, record).

The batch's row is the case's `table` and `files`, else the row the recorded request implies (its file names,
its URLs). A case whose `expect.refuse_at_import` is set must be refused at import, with one line naming the row,
and nothing sent; an import refusal is also right wherever the expected record is `invalid_input`. Where an
`if_sent` answer served its `else` (the client did not send what provokes the recorded refusal), `expect.else`
is what the batch must record. File sizes are replayed at 1/1024 with Dify's limits scaled alike.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from batches import conf
from batches.choices import BatchStatus, ExecutionStatus
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings, CallResult
from batches.imports.importers import ImportFileError
from batches.models import Attempt, BatchFile, BatchTask, Execution, Workflow
from batches.runner.worker import Runner
from batches.services import imports
from tests.replay import FILE_RECORDINGS, load
from tests.replay_files import FilesApp, case_named, form_of, kind_of, serving

CASES = sorted(FILE_RECORDINGS.glob("*.json"))
SCALE = 1024  # sizes and limits divided by this: a 150 MB video is replayed as 150 KB against a 100 KB limit
DEFAULT_NAME, DEFAULT_SIZE = "invoice-0042.pdf", 48213
USER = "batch-17"


def test_the_file_recordings_are_there() -> None:
    assert len(CASES) >= 20, f"no recordings found in {FILE_RECORDINGS}"


# ----------------------------------------------------------------------------------------------- the client


def app_for(url: str) -> AppSettings:
    return AppSettings(
        mode="workflow", base_url=url, api_key="app-recorded-key-0123", response_mode="blocking", timeout=30
    )


async def upload(app: AppSettings, path: Path, filename: str) -> CallResult:
    async with DifyClient() as client:
        return await client.upload(app, path, filename=filename, user=USER)


async def run(app: AppSettings, inputs: dict[str, Any]) -> CallResult:
    async with DifyClient() as client:
        return await client.run(app, inputs, user=USER)


def check_call(expect: dict[str, Any], result: CallResult) -> None:
    assert result.ok == expect["ok"], (result.error_type, result.error)
    if expect["ok"]:
        if "upload_id" in expect:
            assert result.outputs and result.outputs["id"] == expect["upload_id"]
        if "outputs" in expect:
            assert result.outputs == expect["outputs"]
        return
    assert result.error_type in [expect["error_type"], *expect.get("alt_error_types", [])], result.error
    assert expect.get("error_contains", "") in result.error
    if result.error_type == expect["error_type"] and "http_status" in expect:
        assert result.http_status == expect["http_status"]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_a_recorded_file_answer_is_understood_by_the_client(path: Path, tmp_path: Path) -> None:
    case = {**load(path), "replay": {}}  # the case's own answer to its own request
    request = case["request"]
    with serving(case) as (url, _):
        if kind_of(case) == "upload":
            sent = (request["multipart"]["files"] or [{}])[0]
            file = tmp_path / "file"
            file.write_bytes(b"%PDF-1.4 replayed")
            result = asyncio.run(upload(app_for(url), file, sent.get("filename") or DEFAULT_NAME))
        else:
            result = asyncio.run(run(app_for(url), request["json"]["inputs"]))
    check_call(case["expect"], result)


# ----------------------------------------------------------------------------------------------- a one-row batch


def uploaded_name(case: dict[str, Any]) -> str:
    """The name of the file the case's first upload answer describes (what a local_file mapping named)."""
    answers = (case.get("replay") or {}).get("upload") or []
    first = answers[0] if answers else None
    answer = case_named(first) if isinstance(first, str) else first
    if isinstance(answer, dict) and "if_sent" in answer:
        answer = case_named(answer["else"]) if isinstance(answer["else"], str) else answer["else"]
    try:
        return str(json.loads(answer["body_chunks"][0])["name"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError, IndexError):
        return DEFAULT_NAME


def cell_of(value: Any, case: dict[str, Any]) -> str:
    items = value if isinstance(value, list) else [value]
    cells = []
    for item in items:
        if not isinstance(item, dict):
            cells.append(str(item))
        elif item.get("url") or item.get("remote_url"):
            cells.append(str(item.get("url") or item.get("remote_url")))
        elif item.get("transfer_method") == "local_file":
            cells.append(uploaded_name(case))
    return "\n".join(cells)


def row_of(case: dict[str, Any]) -> tuple[dict[str, str], dict[str, int]]:
    """The row (variable → cell) and the ZIP's files (name → size) a user would import for this case."""
    if "table" in case:
        table = {key: str(value) for key, value in case["table"].items()}
        names = [line for cell in table.values() for line in cell.splitlines() if not line.startswith("http")]
        return table, case.get("files") or dict.fromkeys(names, DEFAULT_SIZE)
    request = case["request"]
    if kind_of(case) == "upload":
        sent = (request["multipart"]["files"] or [{}])[0]
        name = sent.get("filename") or DEFAULT_NAME
        return {"doc": name}, {name: int(sent.get("size") or DEFAULT_SIZE)}
    table = {key: cell_of(value, case) for key, value in request["json"]["inputs"].items()}
    table = {key: cell for key, cell in table.items() if cell}
    local = [cell for cell in table.values() for cell in cell.splitlines() if not cell.startswith(("http", "data:"))]
    return table, dict.fromkeys(local, DEFAULT_SIZE)


def source_of(tmp_path: Path, table: dict[str, str], files: dict[str, int]) -> Path:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(table)
    writer.writerow(table.values())
    if not files:
        path = tmp_path / "rows.csv"
        path.write_text(text.getvalue(), encoding="utf-8")
        return path
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("rows.csv", text.getvalue())
        for name, size in files.items():
            archive.writestr(name, b"%PDF" + bytes(max(0, size // SCALE - 4)))
    return path


@pytest.fixture
def scaled(settings: Any, tmp_path: Path) -> None:
    settings.BATCHES_FILES_DIR = tmp_path / "files"
    settings.BATCHES_BACKOFF_BASE = 600  # a retried row waits: what one try records stays to be seen
    for kind in ("FILE", "IMAGE", "AUDIO", "VIDEO"):
        name = f"BATCHES_DIFY_{kind}_SIZE_LIMIT_MB"
        setattr(settings, name, getattr(conf.settings, name) / SCALE)


def expected(case: dict[str, Any], app: FilesApp) -> dict[str, Any]:
    expect = case["expect"]
    return {**expect, **expect["else"]} if app.else_served and "else" in expect else expect


def check_refused(case: dict[str, Any], app: FilesApp, refused: ImportFileError) -> None:
    expect = case["expect"]
    assert expect.get("refuse_at_import") or (
        not expect["ok"] and "invalid_input" in [expect["error_type"], *expect.get("alt_error_types", [])]
    ), f"refused at import, but Dify would take it: {refused}"
    assert str(refused).startswith("line 2: ") and "\n" not in str(refused)
    assert [r["path"] for r in app.requests if not r["path"].startswith("/v1/parameters")] == []
    assert not BatchTask.objects.exists()


def check_row(case: dict[str, Any], app: FilesApp, execution: Execution, batch: BatchTask) -> None:
    expect = expected(case, app)
    assert not case["expect"].get("refuse_at_import"), "Dify is sure to refuse this file: the import should have"
    if expect["ok"]:
        assert execution.status == ExecutionStatus.SUCCEEDED, (execution.error_type, execution.error)
        for name in ("outputs", "workflow_run_id", "task_id"):
            if name in expect:
                assert getattr(execution, name) == expect[name], name
        if "upload_id" in expect:
            assert BatchFile.objects.get(batch=batch).upload_id == expect["upload_id"]
    else:
        kinds = [expect["error_type"], *expect.get("alt_error_types", [])]
        assert execution.error_type in kinds, execution.error
        retried = execution.status == ExecutionStatus.PENDING
        by_type = expect.get("retried_by_type") or {}
        assert retried == by_type.get(execution.error_type, expect["retried"]), (execution.status, execution.error)
        assert expect.get("error_contains", "") in execution.error
        if execution.error_type == expect["error_type"] and "http_status" in expect:
            assert execution.http_status == expect["http_status"]
        if kind_of(case) == "upload":
            assert app.count("run") == 0, "a run was sent without the file's upload id"
    if "reuploads" in expect:
        assert app.count("upload") == 1 + expect["reuploads"]
        assert Attempt.objects.filter(execution=execution).count() == 1
    assert (batch.status == BatchStatus.PAUSED) == expect["pauses_batch"], batch.status_reason


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_a_recorded_file_answer_is_recorded_through_a_one_row_batch(path: Path, tmp_path: Path, scaled: None) -> None:
    case = load(path)
    table, files = row_of(case)
    with serving(case) as (url, app):
        workflow = Workflow.objects.create(
            name=case["case"][:100], base_url=url, api_key="app-recorded-key-0123", response_mode="blocking", timeout=30
        )
        try:
            batch = imports.import_batch(workflow, source_of(tmp_path, table, files))
        except ImportFileError as refused:
            check_refused(case, app, refused)
            return
        Runner().run(seconds=2)
    execution = Execution.objects.get(batch=batch)
    batch.refresh_from_db()
    check_row(case, app, execution, batch)


def test_the_replayed_app_declares_the_cases_variables() -> None:
    case = case_named("f17_wf_blocking_400_type_mismatch_custom_for_pdf")

    assert form_of(case)[0]["file"]["allowed_file_types"] == ["custom"]


@pytest.mark.django_db(transaction=True)
def test_an_upload_id_format_refusal_is_the_rows_own_and_uploads_nothing_again(tmp_path: Path, scaled: None) -> None:
    """f15 forced: Dify refuses whatever id is sent. Only "Invalid upload file" means upload again."""
    case = case_named("f15_wf_blocking_400_upload_file_id_format")
    case["replay"]["run"] = ["self"]
    table, files = row_of(case)
    with serving(case) as (url, app):
        workflow = Workflow.objects.create(name="f15", base_url=url, api_key="app-key-0123", response_mode="blocking")
        batch = imports.import_batch(workflow, source_of(tmp_path, table, files))
        Runner().run(seconds=2)

    check_row(case, app, Execution.objects.get(batch=batch), BatchTask.objects.get(pk=batch.pk))
    assert (app.count("upload"), app.count("run")) == (1, 1)
