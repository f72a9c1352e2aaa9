"""File inputs (issue 15): URLs and ZIP imports reach the app as file mappings; each file is uploaded once."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.dify.types import InputVariable
from batches.imports import files, inputs
from batches.imports.importers import ImportFileError
from batches.models import Attempt, BatchFile, BatchTask, Execution, Workflow
from batches.runner.worker import Runner
from batches.services import file_uploads, imports, lifecycle, rerun
from fakedify.harness import running_fake_dify

DOC = InputVariable("doc", "Document", required=True, type="file")
NO_START = imports.ImportOptions(start=False)
DOCS = InputVariable("docs", "Documents", type="file-list", max_length=3)


@pytest.fixture(scope="module")
def fake():
    with running_fake_dify("--variables", "doc:Document:required:file,text:Text") as server:
        yield server


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path):
    settings.BATCHES_FILES_DIR = tmp_path / "files"
    return settings.BATCHES_FILES_DIR


@pytest.fixture
def workflow(make_workflow, fake):
    fake.restore()
    return make_workflow(base_url=fake.url, response_mode="blocking")


def write_zip(path: Path, table: str, members: dict[str, bytes], name: str = "rows.csv") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, table)
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def invoice_zip(tmp_path: Path, rows: int = 50, distinct: int = 20) -> Path:
    table = "doc,text\n" + "".join(f"invoices/{i % distinct:02d}.pdf,row {i}\n" for i in range(rows))
    members = {f"invoices/{i:02d}.pdf": b"%PDF-1.4 invoice " + str(i).encode() * 100 for i in range(distinct)}
    return write_zip(tmp_path / "invoices.zip", table, members)


def left_on_disk(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*")] if folder.exists() else []


# ----------------------------------------------------------------------------------------------- mapping rules


def test_a_url_becomes_a_remote_file_mapping_typed_by_its_extension():
    row = inputs.convert_row({"doc": " https://example.com/a/contract.PDF "}, [DOC])

    assert row["doc"] == {
        "type": "document",
        "transfer_method": "remote_url",
        "url": "https://example.com/a/contract.PDF",
    }


@pytest.mark.parametrize(
    "cell",
    ["https://x.test/a.png\nhttps://x.test/b.mp3\n", '["https://x.test/a.png", "https://x.test/b.mp3"]'],
)
def test_a_file_list_cell_holds_urls_one_per_line_or_as_a_json_array(cell):
    row = inputs.convert_row({"docs": cell}, [DOCS])

    assert [(item["type"], item["url"]) for item in row["docs"]] == [
        ("image", "https://x.test/a.png"),
        ("audio", "https://x.test/b.mp3"),
    ]


@pytest.mark.parametrize(
    ("variable", "cell", "message"),
    [
        (DOC, "contract.pdf", "'doc' (Document) is 'contract.pdf', not an http(s) URL"),
        (DOC, "ftp://x.test/a.pdf", "not an http(s) URL"),
        (
            InputVariable("doc", "doc", type="file", allowed_file_types=("image",)),
            "https://x.test/a.pdf",
            "is a document to Dify; the app accepts image",
        ),
        (
            InputVariable("doc", "doc", type="file", allowed_file_upload_methods=("local_file",)),
            "https://x.test/a.pdf",
            "does not accept files by URL",
        ),
        (
            DOCS,
            "https://x.test/1.pdf\nhttps://x.test/2.pdf\nhttps://x.test/3.pdf\nhttps://x.test/4.pdf",
            "4 files, over its limit of 3",
        ),
        (DOC, "https://x.test/1.pdf\nhttps://x.test/2.pdf", "takes one file, not 2"),
    ],
)
def test_a_value_the_app_would_refuse_is_an_input_error(variable, cell, message):
    with pytest.raises(inputs.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        inputs.convert_row({variable.variable: cell}, [variable])


def test_a_custom_type_takes_the_extensions_the_variable_lists_exactly():
    variable = InputVariable(
        "doc", "doc", type="file", allowed_file_types=("custom",), allowed_file_extensions=(".json", ".ZIP")
    )

    assert inputs.convert_row({"doc": "https://x.test/data.json"}, [variable])["doc"]["type"] == "custom"
    with pytest.raises(inputs.InputError, match="is a .zip file, which Dify types `custom`; the app accepts custom"):
        inputs.convert_row({"doc": "https://x.test/plan.zip"}, [variable])


def test_pages_show_a_file_cells_url_as_written_and_a_zip_members_name():
    mappings = [
        {"type": "document", "transfer_method": "remote_url", "url": "https://x.test/a%20b.pdf?x=1"},
        {"type": "image", "transfer_method": "local_file", "file": "photos/c.png"},
    ]

    assert files.display(mappings) == "https://x.test/a%20b.pdf?x=1, photos/c.png"
    assert files.display("plain text") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam.pdf",
        "http://[fe80::1]/a.pdf",
        "http://[::ffff:169.254.169.254]/a.pdf",
        "http://2852039166/a.pdf",  # 169.254.169.254 written as one number: resolvers read it so
        "http://0xa9.0xfe.0xa9.0xfe/a.pdf",
        "http://metadata.google.internal/computeMetadata/v1/a.pdf",
        "http://100.100.100.200/latest/meta-data/a.pdf",
        "http://[fd00:ec2::254]/a.pdf",
    ],
)
@pytest.mark.parametrize("fetches_private", [False, True])
def test_a_file_url_on_a_link_local_or_metadata_address_is_refused(url, fetches_private, settings):
    """Whatever Dify's server may fetch (BATCHES_DIFY_FETCHES_PRIVATE_URLS), never a metadata service."""
    settings.BATCHES_ALLOWED_UPSTREAM_HOSTS = []
    settings.BATCHES_DIFY_FETCHES_PRIVATE_URLS = fetches_private

    with pytest.raises(inputs.InputError, match="cloud metadata"):
        inputs.convert_row({"doc": url}, [DOC])


def test_a_file_url_on_a_listed_link_local_range_is_allowed_where_dify_fetches_private_urls(settings):
    settings.BATCHES_ALLOWED_UPSTREAM_HOSTS = ["169.254.0.0/16"]
    settings.BATCHES_DIFY_FETCHES_PRIVATE_URLS = True

    assert inputs.convert_row({"doc": "http://169.254.1.1/a.pdf"}, [DOC])["doc"]["url"] == "http://169.254.1.1/a.pdf"


@pytest.mark.parametrize("url", ["https://example.com/a.pdf", "http://10.0.0.5/a.pdf", "http://files.intranet/a.pdf"])
def test_file_urls_on_public_and_private_hosts_stay_allowed_where_dify_fetches_private_urls(url, settings):
    settings.BATCHES_DIFY_FETCHES_PRIVATE_URLS = True

    assert inputs.convert_row({"doc": url}, [DOC])["doc"]["url"] == url


# ----------------------------------------------------------------------------------------------- import


def test_remote_urls_reach_the_app_as_file_mappings(workflow, fake, tmp_path):
    table = tmp_path / "rows.csv"
    table.write_text("doc,text\nhttps://example.com/a.pdf,one\nhttps://example.com/b.png,two\n")

    batch = imports.import_batch(workflow, table)
    Runner().run(seconds=30)

    sent = [row.outputs["echo"]["doc"] for row in Execution.objects.filter(batch=batch).order_by("index")]
    assert sent == [
        {"type": "document", "transfer_method": "remote_url", "url": "https://example.com/a.pdf"},
        {"type": "image", "transfer_method": "remote_url", "url": "https://example.com/b.png"},
    ]
    assert fake.stats()["uploads"]["total"] == 0


def test_a_cell_that_is_not_a_url_is_an_import_error_naming_its_line(workflow, tmp_path):
    table = tmp_path / "rows.csv"
    table.write_text("doc,text\nhttps://example.com/a.pdf,one\nscan.pdf,two\n")

    with pytest.raises(ImportFileError, match=r"^line 3: 'doc' \(Document\) is 'scan.pdf', not an http\(s\) URL"):
        imports.import_batch(workflow, table)
    assert not BatchTask.objects.exists()


def test_a_metadata_url_in_a_cell_is_an_import_error_naming_its_line(workflow, tmp_path):
    table = tmp_path / "rows.csv"
    table.write_text("doc,text\nhttps://example.com/a.pdf,one\nhttp://169.254.169.254/a.pdf,two\n")

    with pytest.raises(ImportFileError, match=r"^line 3: 'doc' \(Document\) .*link-local"):
        imports.import_batch(workflow, table)
    assert not BatchTask.objects.exists()


def test_a_zip_import_keeps_each_named_file_once_on_disk(workflow, tmp_path, files_dir):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path), options=imports.ImportOptions(start=False))

    assert (batch.total, batch.source_filename, batch.name) == (50, "invoices.zip", "invoices")
    kept = BatchFile.objects.filter(batch=batch)
    assert kept.count() == 20
    assert all((files_dir / item.stored).read_bytes().startswith(b"%PDF") for item in kept)
    first = Execution.objects.get(batch=batch, index=0).inputs["doc"]
    assert first == {"type": "document", "transfer_method": "local_file", "file": "invoices/00.pdf"}


def test_a_zip_of_50_rows_naming_20_files_uploads_each_file_once(workflow, fake, tmp_path):
    # All 50 at once: rows naming the same file are in flight together and share its one upload.
    batch = imports.import_batch(workflow, invoice_zip(tmp_path), options=imports.ImportOptions(concurrency=50))

    Runner().run(seconds=60)

    stats = fake.stats()
    assert (stats["uploads"]["total"], stats["calls"]) == (20, 50)
    assert set(stats["uploads"]["by_name"].values()) == {1}
    upload_ids = dict(BatchFile.objects.filter(batch=batch).values_list("name", "upload_id"))
    for row in Execution.objects.filter(batch=batch):
        assert row.status == ExecutionStatus.SUCCEEDED
        assert row.outputs["echo"]["doc"]["upload_file_id"] == upload_ids[row.inputs["doc"]["file"]]


def test_a_row_retried_by_hand_reuses_its_upload(workflow, fake, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=4, distinct=2))
    Runner().run(seconds=30)
    row = Execution.objects.get(batch=batch, index=0)
    Execution.objects.filter(pk=row.pk).update(status=ExecutionStatus.FAILED)

    lifecycle.retry_executions(Execution.objects.filter(pk=row.pk))
    Runner().run(seconds=30)

    assert fake.stats()["uploads"]["total"] == 2
    row.refresh_from_db()
    assert (row.status, row.attempt_count) == (ExecutionStatus.SUCCEEDED, 2)


def test_a_transient_upload_failure_is_retried_like_a_call(workflow, fake, tmp_path, settings):
    settings.BATCHES_BACKOFF_BASE = 0.05
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1))
    fake.fail_uploads(1, 503)

    Runner().run(seconds=30)

    row = Execution.objects.get(batch=batch)
    outcomes = list(Attempt.objects.filter(execution=row).values_list("outcome", "error_type", "http_status"))
    assert outcomes == [("failed", "upstream_error", 503), ("succeeded", "", 200)]
    assert "upload of 'invoices/00.pdf'" in Attempt.objects.filter(execution=row).first().error
    assert fake.stats()["uploads"] == {**fake.stats()["uploads"], "total": 1, "failed": 1}


def test_an_upload_dify_lost_is_uploaded_again_once(workflow, fake, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=6, distinct=2))
    Runner().run(seconds=30)
    fake.expire_uploads()
    # Failed before any run started: a known run would be looked up (and its success recorded) instead of called.
    Execution.objects.filter(batch=batch).update(status=ExecutionStatus.FAILED, workflow_run_id="")

    lifecycle.retry_executions(Execution.objects.filter(batch=batch))
    Runner().run(seconds=30)

    assert Counter(fake.stats()["uploads"]["by_name"].values()) == Counter({2: 2})
    assert set(Execution.objects.filter(batch=batch).values_list("status", flat=True)) == {ExecutionStatus.SUCCEEDED}
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED


def test_one_process_uploads_a_file_while_the_others_wait_until_its_lease_expires(workflow, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1), options=NO_START)

    first = file_uploads.take(batch.pk, "invoices/00.pdf", owner="node:a", lease_seconds=60, user="u")
    second = file_uploads.take(batch.pk, "invoices/00.pdf", owner="node:b", lease_seconds=60, user="u")
    BatchFile.objects.update(upload_until=timezone.now() - timedelta(seconds=1))
    after_expiry = file_uploads.take(batch.pk, "invoices/00.pdf", owner="node:b", lease_seconds=60, user="u")
    file_uploads.store(after_expiry.file_id, upload_id="up-1", user="u")

    assert (first.mine, second.mine, after_expiry.mine) == (True, False, True)
    again = file_uploads.take(batch.pk, "invoices/00.pdf", owner="node:a", lease_seconds=60, user="u")
    assert again.upload_id == "up-1"
    assert file_uploads.take(batch.pk, "missing.pdf", owner="node:a", lease_seconds=60, user="u").file_id is None


# ----------------------------------------------------------------------------------------------- hostile ZIPs


def outside(folder: Path, files_dir: Path) -> list[Path]:
    """Everything under `folder` but the files folder itself (which an import may create, empty)."""
    return sorted(path for path in folder.rglob("*") if path != files_dir)


def traversal_zip(path: Path) -> Path:
    return write_zip(path, "doc,text\nok.pdf,x\n", {"ok.pdf": b"x", "../evil.pdf": b"x"})


def absolute_zip(path: Path) -> Path:
    return write_zip(path, "doc,text\nok.pdf,x\n", {"ok.pdf": b"x", "/etc/evil.pdf": b"x"})


def link_zip(path: Path) -> Path:
    write_zip(path, "doc,text\nlink.pdf,x\n", {})
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo("link.pdf")
        info.external_attr = (0o120777 << 16) | 0x20
        archive.writestr(info, "/etc/passwd")
    return path


def many_entries_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("rows.csv", "doc,text\nf0,x\n")
        for i in range(100_000):
            archive.writestr(f"f{i}", b"")
    return path


def bomb_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("rows.csv", "doc,text\nbomb.pdf,x\n")
        with archive.open("bomb.pdf", "w", force_zip64=True) as member:
            zeros = bytes(1024 * 1024)
            for _ in range(300):
                member.write(zeros)
    return path


def missing_file_zip(path: Path) -> Path:
    return write_zip(path, "doc,text\na.pdf,x\nb.pdf,y\n", {"a.pdf": b"x"})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (traversal_zip, r"^the ZIP entry '\.\./evil\.pdf' points outside its folder"),
        (absolute_zip, r"^the ZIP entry '/etc/evil\.pdf' has an absolute or unsafe path$"),
        (link_zip, r"^the ZIP entry 'link\.pdf' is a link or a device, not a file$"),
        (many_entries_zip, r"^the ZIP holds 100,001 entries, more than 10,000$"),
        (bomb_zip, r"^the ZIP entry 'bomb\.pdf' is compressed [\d,]+ times \(a ZIP bomb\?\)$"),
        (missing_file_zip, r"^line 3: 'doc' \(Document\) names 'b\.pdf', which the ZIP does not hold$"),
    ],
)
def test_a_hostile_zip_is_refused_with_one_line_and_changes_nothing(workflow, tmp_path, files_dir, build, message):
    source = build(tmp_path / "upload.zip")
    before = outside(tmp_path, files_dir)

    with pytest.raises(ImportFileError, match=message) as refused:
        imports.import_batch(workflow, source)

    assert "\n" not in str(refused.value)
    assert not BatchTask.objects.exists() and not BatchFile.objects.exists()
    assert left_on_disk(files_dir) == []
    assert outside(tmp_path, files_dir) == before


def test_an_entry_that_unpacks_to_more_than_it_declares_is_refused(workflow, tmp_path, files_dir):
    source = write_zip(tmp_path / "upload.zip", "doc,text\na.pdf,x\n", {"a.pdf": b"A" * 5000})
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo("a.pdf")
    assert info.file_size == 5000
    # Lie in both headers: the entry says 100 bytes.
    for header in (data.find(b"a.pdf") - 30, data.rfind(b"a.pdf") - 46):
        offset = header + (22 if data[header : header + 4] == b"PK\x03\x04" else 24)
        data[offset : offset + 4] = (100).to_bytes(4, "little")
    source.write_bytes(bytes(data))

    with pytest.raises(ImportFileError, match=r"'a\.pdf' (unpacks to more than it declares|cannot be unpacked)"):
        imports.import_batch(workflow, source)

    assert left_on_disk(files_dir) == []


# ----------------------------------------------------------------------------------------------- keeping files


def test_files_are_kept_for_the_retention_window_after_their_batch_ended_and_their_upload_ids_kept(
    workflow, tmp_path, files_dir
):
    done = imports.import_batch(workflow, invoice_zip(tmp_path, rows=2, distinct=2), options=NO_START)
    (tmp_path / "second").mkdir()
    failed = imports.import_batch(workflow, invoice_zip(tmp_path / "second", rows=2, distinct=2), options=NO_START)
    finished = {"status": BatchStatus.FINISHED, "finished_at": timezone.now()}
    BatchTask.objects.filter(pk__in=[done.pk, failed.pk]).update(**finished)
    Execution.objects.filter(batch=done).update(status=ExecutionStatus.SUCCEEDED)
    Execution.objects.filter(batch=failed, index=0).update(status=ExecutionStatus.FAILED)
    BatchFile.objects.update(upload_id="kept")

    assert file_uploads.sweep_files() == 0  # any ended batch may be run again, or its failed rows retried
    assert file_uploads.sweep_files(now=timezone.now() + timedelta(days=8)) == 4
    assert set(BatchFile.objects.values_list("stored", "upload_id")) == {("", "kept")}
    assert left_on_disk(files_dir) == []


def test_edited_inputs_of_a_manual_retry_may_name_the_batchs_files_and_no_others(workflow, tmp_path, monkeypatch):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=2, distinct=2), options=NO_START)
    row = Execution.objects.get(batch=batch, index=0)
    monkeypatch.setattr(lifecycle, "read_input_variables", lambda workflow, config=None: [DOC])
    other = {"type": "document", "transfer_method": "local_file", "file": "invoices/01.pdf"}

    assert lifecycle.typed_inputs(row, edited={"doc": other}) == {"doc": other}
    assert lifecycle.typed_inputs(row, edited={"doc": "invoices/00.pdf"})["doc"]["file"] == "invoices/00.pdf"
    with pytest.raises(inputs.InputError, match="names 'invoices/99.pdf', which is not one of the batch's files"):
        lifecycle.typed_inputs(row, edited={"doc": "invoices/99.pdf"})


def test_import_batch_takes_a_zip_and_refuses_a_hostile_one_with_one_line(workflow, tmp_path):
    out = io.StringIO()

    call_command(
        "import_batch", str(invoice_zip(tmp_path, 3, 2)), "--workflow", workflow.name, "--no-start", stdout=out
    )

    assert BatchTask.objects.get(pk=int(out.getvalue().split()[-1])).files.count() == 2
    with pytest.raises(CommandError, match=r"^upload\.zip: the ZIP entry '\.\./evil\.pdf' points outside its folder"):
        call_command("import_batch", str(traversal_zip(tmp_path / "upload.zip")), "--workflow", workflow.name)
    assert BatchTask.objects.count() == 1


def test_the_fake_declares_file_variables_and_refuses_what_dify_refuses(fake):
    fake.restore()
    headers = {"Authorization": "Bearer app-test"}
    form = httpx.get(f"{fake.url}/parameters", headers=headers).json()["user_input_form"]
    run = {"response_mode": "blocking", "user": "batch-1"}

    as_text = httpx.post(
        f"{fake.url}/workflows/run", headers=headers, json={**run, "inputs": {"doc": "https://x.test/a.pdf"}}
    )
    unknown_id = "7c1e9a52-3f4d-4b8e-a6c0-91d2e3f4a5b6"  # well formed, never uploaded
    unknown = {"type": "document", "transfer_method": "local_file", "upload_file_id": unknown_id}
    lost = httpx.post(f"{fake.url}/workflows/run", headers=headers, json={**run, "inputs": {"doc": unknown}})

    assert form[0]["file"]["allowed_file_upload_methods"] == ["local_file", "remote_url"]
    assert (as_text.status_code, as_text.json()["message"]) == (400, "doc in input form must be a file")
    assert (lost.status_code, lost.json()["message"]) == (400, "Invalid upload file")


def test_an_upload_takes_a_token_of_the_workflows_rpm_bucket(workflow):
    Workflow.objects.filter(pk=workflow.pk).update(rpm_limit=60)  # a new bucket holds one second's worth: 1

    assert file_uploads.upload_token(workflow.pk) is True
    assert file_uploads.upload_token(workflow.pk) is False
    Workflow.objects.filter(pk=workflow.pk).update(rpm_limit=None)
    assert file_uploads.upload_token(workflow.pk) is True


def test_a_table_inside_the_zip_keeps_the_upload_limit_of_a_table(workflow, tmp_path, settings):
    settings.BATCHES_MAX_UPLOAD_BYTES = 1000
    source = write_zip(tmp_path / "big.zip", "doc,text\n" + "https://x.test/a.pdf,long text\n" * 100, {})

    with pytest.raises(ImportFileError, match=r"^the table 'rows\.csv' unpacks to over the 1000 bytes limit$"):
        imports.import_batch(workflow, source)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("BATCHES_MAX_ZIP_BYTES", r"^the ZIP is \d+ bytes, over the 100 bytes limit$"),
        ("BATCHES_MAX_ZIP_UNPACKED_BYTES", r"^the ZIP unpacks to \d+ bytes, over the 100 bytes limit$"),
    ],
)
def test_a_zip_over_its_limits_is_refused(workflow, tmp_path, settings, setting, message):
    setattr(settings, setting, 100)
    source = write_zip(tmp_path / "big.zip", "doc,text\na.pdf,x\n", {"a.pdf": bytes(500)})

    with pytest.raises(ImportFileError, match=message):
        imports.import_batch(workflow, source)


def test_a_zip_batch_run_again_uploads_under_its_own_user_and_keeps_the_files_it_needs(workflow, fake, tmp_path):
    source = imports.import_batch(workflow, invoice_zip(tmp_path, rows=4, distinct=2))
    Runner().run(seconds=30)

    assert file_uploads.sweep_files() == 0
    again = rerun.rerun_batch(source.pk, options=rerun.RerunOptions(only="all"))
    Runner().run(seconds=30)

    assert fake.stats()["uploads"]["total"] == 4  # each batch is its own Dify user (BATCHES_UPLOAD_SHARED_USER off)
    assert set(Execution.objects.filter(batch=again).values_list("status", flat=True)) == {ExecutionStatus.SUCCEEDED}
    assert file_uploads.sweep_files(now=timezone.now() + timedelta(days=8)) == 4


def test_a_file_list_of_zip_files_is_sent_with_each_files_upload_id():
    stored = {
        "docs": [
            {"type": "document", "transfer_method": "local_file", "file": "a.pdf"},
            {"type": "image", "transfer_method": "remote_url", "url": "https://x.test/b.png"},
            {"type": "document", "transfer_method": "local_file", "file": "a.pdf"},
        ],
        "text": "x",
    }

    assert files.local_names(stored) == ["a.pdf"]
    assert files.with_upload_ids(stored, {"a.pdf": "up-a"})["docs"] == [
        {"type": "document", "transfer_method": "local_file", "upload_file_id": "up-a"},
        {"type": "image", "transfer_method": "remote_url", "url": "https://x.test/b.png"},
        {"type": "document", "transfer_method": "local_file", "upload_file_id": "up-a"},
    ]


def test_a_zip_entry_with_an_overlong_name_is_refused(workflow, tmp_path):
    source = write_zip(tmp_path / "long.zip", "doc,text\na.pdf,x\n", {"a" * 1001 + ".pdf": b"x", "a.pdf": b"x"})

    with pytest.raises(ImportFileError, match="has a name over 1000 characters"):
        imports.import_batch(workflow, source)


def test_a_file_dify_refuses_fails_its_row_at_once_naming_the_file(workflow, fake, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1))
    fake.fail_uploads(1, 413)

    Runner().run(seconds=30)

    row = Execution.objects.get(batch=batch)
    assert (row.status, row.error_type, row.http_status, row.attempt_count) == ("failed", "invalid_input", 413, 1)
    assert row.error == "upload of 'invoices/00.pdf': HTTP 413 file_too_large: File size exceeded. {message}"


@pytest.mark.parametrize(("recheck_minutes", "uploads_made"), [(0, 2), (60, 1)])
def test_a_silent_stream_makes_the_retry_upload_an_old_file_again(
    make_workflow, fake, tmp_path, settings, recheck_minutes, uploads_made
):
    # Dify answers a lost upload in streaming mode with silence (dify-real case 07): the call times out.
    settings.BATCHES_BACKOFF_BASE = 0.05
    settings.BATCHES_UPLOAD_RECHECK_MINUTES = recheck_minutes  # 0: every upload counts as old
    fake.restore()
    workflow = make_workflow(base_url=fake.url, response_mode="streaming", timeout=1)
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1), options=NO_START)
    Execution.objects.filter(batch=batch).update(inputs={**Execution.objects.get(batch=batch).inputs, "_fault": "hang"})

    lifecycle.start_batch(batch.pk)
    Runner().run(seconds=30)

    row = Execution.objects.get(batch=batch)
    assert list(Attempt.objects.filter(execution=row).values_list("error_type", flat=True)) == ["timeout"] * 3
    assert fake.stats()["uploads"]["by_name"] == {"00.pdf": uploads_made}


def test_a_recent_upload_is_kept_after_a_silent_stream(workflow, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1), options=NO_START)
    file_uploads.store(BatchFile.objects.get(batch=batch).pk, upload_id="up-1", user="u")
    file_id = BatchFile.objects.get(batch=batch).pk

    assert file_uploads.forget(file_id, upload_id="up-1", older_only=True) is False
    assert file_uploads.forget(file_id, upload_id="up-1") is True
    assert BatchFile.objects.get(pk=file_id).upload_id == ""


@pytest.mark.django_db(transaction=True)
def test_a_zip_import_asks_the_app_for_its_variables_outside_any_transaction(workflow, tmp_path, monkeypatch):
    """A network call inside the import's transaction would hold SQLite's write lock (and a PostgreSQL
    transaction) for as long as the app takes to answer, as a plain table's import never does."""
    from django.db import connection

    from batches.dify import pages

    asked_inside = []
    real_fetch = pages.fetch_parameters

    def fetch(app, timeout=5):
        asked_inside.append(connection.in_atomic_block)
        return real_fetch(app, timeout)

    monkeypatch.setattr(pages, "fetch_parameters", fetch)
    imports.import_batch(workflow, invoice_zip(tmp_path, rows=2, distinct=1), options=NO_START)

    assert asked_inside == [False]
