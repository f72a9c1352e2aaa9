"""A file as Dify sees it (imports/file_types.py) and the import's refusals of what Dify would refuse (issue 29)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from batches import conf
from batches.dify import file_types
from batches.dify.types import InputVariable
from batches.imports import inputs
from batches.imports.importers import ImportFileError
from batches.models import BatchFile, BatchTask, Execution
from batches.services import imports

pytestmark = pytest.mark.usefixtures("files_dir")

DOCS_ONLY = {"allowed_file_types": ("document",), "allowed_file_upload_methods": ("local_file", "remote_url")}
DOC = InputVariable("doc", "doc", required=True, type="file", **DOCS_ONLY)  # type: ignore[arg-type]
DOCS = InputVariable("docs", "docs", type="file-list", max_length=3, **DOCS_ONLY)  # type: ignore[arg-type]
NO_START = imports.ImportOptions(start=False)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.pdf", "document"),
        ("a.PDF", "document"),
        ("a.docx", "document"),
        ("a.pptx", "custom"),  # default ETL: not a document; its MIME type names none of Dify's kinds
        ("a.doc", "custom"),
        ("a.eml", "custom"),
        ("a.epub", "custom"),
        ("a.jpeg", "image"),
        ("a.mp3", "audio"),
        ("a.webm", "video"),
        ("a.json", "custom"),
        ("a.js", "document"),  # text/javascript: "text" in the MIME type
        ("noextension", "custom"),
    ],
)
def test_an_upload_is_typed_by_its_extension_then_its_mime_type_as_dify_does(name, kind):
    assert file_types.of_upload(name).type == kind


def test_the_servers_etl_setting_decides_what_is_a_document(settings):
    settings.BATCHES_DIFY_DOCUMENT_EXTENSIONS = [*conf.settings.BATCHES_DIFY_DOCUMENT_EXTENSIONS, "pptx"]

    assert file_types.of_upload("deck.pptx").type == "document"


@pytest.mark.parametrize(
    ("url", "detected"),
    [
        ("https://x.test/a.pdf?sig=1", ("document", ".pdf")),
        ("https://x.test/photo.jpeg", ("image", ".jpg")),  # the extension mimetypes guesses for its type
        ("https://x.test/deck.pptx", ("custom", ".pptx")),
        ("https://x.test/download", ("", ".bin")),  # only the server's HEAD answer can tell
        ("https://x.test/file.unknownext", ("", ".unknownext")),
    ],
)
def test_a_url_is_typed_from_its_last_segment_as_dify_does(url, detected):
    found = file_types.of_url(url)

    assert (found.type, found.extension) == detected


@pytest.mark.parametrize(
    ("name", "size", "refused"),
    [
        ("a.pdf", 15 * 2**20, ""),
        ("a.pdf", 15 * 2**20 + 1, "is 15.0 MB, over the server's 15 MB limit"),
        ("a.png", 11 * 2**20, "over the server's 10 MB limit"),
        ("a.mp4", 99 * 2**20, ""),
        ("a.wav", 51 * 2**20, "over the server's 50 MB limit"),
        ("setup.EXE", 10, "has the extension .exe, which the server refuses"),
    ],
)
def test_an_upload_dify_would_refuse_is_named(settings, name, size, refused):
    settings.BATCHES_DIFY_UPLOAD_EXTENSION_BLACKLIST = ["exe"]

    assert refused in file_types.upload_refusal(name, size)
    assert bool(file_types.upload_refusal(name, size)) == bool(refused)


def test_the_name_sent_to_dify_has_no_character_it_refuses():
    assert file_types.safe_name('q1/Q1: invoice?*"<>|\\.pdf') == "Q1_ invoice_______.pdf"


@pytest.mark.parametrize(
    ("variable", "cell", "message"),
    [
        (
            InputVariable("doc", "doc", type="file", allowed_file_types=("custom",), allowed_file_extensions=(".pdf",)),
            "https://x.test/a.pdf",
            "is a document to Dify; the app accepts custom files .pdf",
        ),
        (DOC, "https://x.test/deck.pptx", "is a .pptx file, which Dify types `custom`; the app accepts document"),
        (DOC, "https://x.test/download?id=7", "a URL without a file extension"),
        (DOC, "data:application/pdf;base64,JVBERi0x", "not an http(s) URL"),
        (DOC, "http://10.0.0.7/a.pdf", "names a private address, which Dify's SSRF proxy does not fetch"),
        (DOC, "http://localhost:8080/a.pdf", "names a private address"),
    ],
)
def test_a_url_dify_would_refuse_is_an_input_error(variable, cell, message):
    with pytest.raises(inputs.InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        inputs.convert_row({"doc": cell}, [variable])


def test_private_urls_are_taken_where_the_server_fetches_them(settings):
    settings.BATCHES_DIFY_FETCHES_PRIVATE_URLS = True

    assert inputs.convert_row({"doc": "http://10.0.0.7/a.pdf"}, [DOC])["doc"]["url"] == "http://10.0.0.7/a.pdf"


def test_an_image_url_passes_a_variable_that_takes_only_uploads_as_dify_lets_it():
    variable = InputVariable("doc", "doc", type="file", allowed_file_upload_methods=("local_file",))

    assert inputs.convert_row({"doc": "https://x.test/a.png"}, [variable])["doc"]["type"] == "image"
    with pytest.raises(inputs.InputError, match="does not accept files by URL"):
        inputs.convert_row({"doc": "https://x.test/a.pdf"}, [variable])


# ----------------------------------------------------------------------------------------------- ZIP imports


@pytest.fixture
def workflow(make_workflow, monkeypatch):
    monkeypatch.setattr(imports, "read_input_variables", lambda workflow, config=None: [DOC, DOCS])
    return make_workflow(response_mode="blocking")


def zip_of(path: Path, table: str, members: dict[str, int]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # stored: a large file is not a "bomb"
        archive.writestr("rows.csv", table)
        for name, size in members.items():
            archive.writestr(name, b"%PDF" + bytes(max(0, size - 4)))
    return path


@pytest.mark.parametrize(
    ("table", "members", "message"),
    [
        ("doc\nok.pdf\ndeck.pptx\n", {"ok.pdf": 10, "deck.pptx": 10}, r"^line 3: 'doc' 'deck\.pptx' is a \.pptx file"),
        ("doc\nok.pdf\nbig.pdf\n", {"ok.pdf": 10, "big.pdf": 16 * 2**20}, r"^line 3: 'doc' 'big\.pdf' is 16\.0 MB"),
        ("doc\nok.pdf\nrun.exe\n", {"ok.pdf": 10, "run.exe": 10}, r"^line 3: 'doc' 'run\.exe' has the extension \.exe"),
        (
            'doc,docs\nok.pdf,"a.pdf\nb.pdf\nc.pdf\nd.pdf"\n',
            {"ok.pdf": 10, "a.pdf": 1, "b.pdf": 1, "c.pdf": 1, "d.pdf": 1},
            r"^line 2: 'docs' holds 4 files, over its limit of 3",
        ),
        ("doc\nok.pdf\nhttps://x.test/get\n", {"ok.pdf": 10}, r"^line 3: 'doc' is https://x\.test/get, a URL without"),
    ],
)
def test_an_import_refuses_what_dify_would_refuse_with_one_line_naming_the_row_and_file(
    workflow, tmp_path, settings, monkeypatch, files_dir, table, members, message
):
    settings.BATCHES_DIFY_UPLOAD_EXTENSION_BLACKLIST = ["exe"]
    with_custom = InputVariable(
        "doc", "doc", required=True, type="file", allowed_file_types=("document", "custom"),
        allowed_file_extensions=(".exe",),
    )  # fmt: skip
    if "exe" in table:
        monkeypatch.setattr(imports, "read_input_variables", lambda workflow, config=None: [with_custom, DOCS])

    with pytest.raises(ImportFileError, match=message) as refused:
        imports.import_batch(workflow, zip_of(tmp_path / "upload.zip", table, members), options=NO_START)

    assert "\n" not in str(refused.value)
    assert not BatchTask.objects.exists() and not BatchFile.objects.exists() and not Execution.objects.exists()
    assert not any(path.is_file() for path in files_dir.rglob("*")) if files_dir.exists() else True


def test_a_zip_member_with_characters_dify_refuses_is_imported_under_its_own_name(workflow, tmp_path):
    source = zip_of(tmp_path / "upload.zip", 'doc\n"scans/Q1: invoice?.pdf"\n', {"scans/Q1: invoice?.pdf": 100})

    batch = imports.import_batch(workflow, source, options=NO_START)

    assert BatchFile.objects.get(batch=batch).name == "scans/Q1: invoice?.pdf"
    assert Execution.objects.get(batch=batch).inputs["doc"]["type"] == "document"
