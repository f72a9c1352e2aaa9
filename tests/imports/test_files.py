"""A file cell as the app is sent it (batches.imports.files, through inputs.convert_row): URLs become remote file
mappings typed by their extension, values the app would refuse are input errors, metadata addresses are refused,
and a ZIP member's mapping is sent with its upload id."""

from __future__ import annotations

import pytest

from batches.dify.types import InputVariable
from batches.imports import files, inputs
from tests.file_zips import DOC

DOCS = InputVariable("docs", "Documents", type="file-list", max_length=3)


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
