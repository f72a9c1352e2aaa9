"""Importing file inputs (batches.services.file_imports, through imports.import_batch and `import_batch`): URL cells
reach the app as file mappings, a ZIP keeps each named file once, and a hostile or oversized ZIP is refused with one
line and changes nothing."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.management import CommandError, call_command

from batches.imports.importers import ImportFileError
from batches.models import BatchFile, BatchTask, Execution
from batches.runner.worker import Runner
from batches.services import imports
from tests.file_zips import (
    NO_START,
    absolute_zip,
    bomb_zip,
    invoice_zip,
    left_on_disk,
    link_zip,
    many_entries_zip,
    missing_file_zip,
    outside,
    traversal_zip,
    write_zip,
)

pytestmark = pytest.mark.usefixtures("files_dir")


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


def test_import_batch_takes_a_zip_and_refuses_a_hostile_one_with_one_line(workflow, tmp_path):
    out = io.StringIO()

    call_command(
        "import_batch", str(invoice_zip(tmp_path, 3, 2)), "--workflow", workflow.name, "--no-start", stdout=out
    )

    assert BatchTask.objects.get(pk=int(out.getvalue().split()[-1])).files.count() == 2
    with pytest.raises(CommandError, match=r"^upload\.zip: the ZIP entry '\.\./evil\.pdf' points outside its folder"):
        call_command("import_batch", str(traversal_zip(tmp_path / "upload.zip")), "--workflow", workflow.name)
    assert BatchTask.objects.count() == 1


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


def test_a_zip_entry_with_an_overlong_name_is_refused(workflow, tmp_path):
    source = write_zip(tmp_path / "long.zip", "doc,text\na.pdf,x\n", {"a" * 1001 + ".pdf": b"x", "a.pdf": b"x"})

    with pytest.raises(ImportFileError, match="has a name over 1000 characters"):
        imports.import_batch(workflow, source)


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
