"""The fake answers uploads and file inputs as Dify 1.13.2 does (fakedify/files.py, file_checks.py; the cases of
tests/dify/recordings/files)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fakedify import file_checks
from fakedify.harness import FakeDifyProcess, running_fake_dify
from tests.fakedify.helpers import AUTH

UPLOAD_KEYS = {"id", "name", "size", "extension", "mime_type", "created_by", "created_at", "preview_url"}
UPLOAD_KEYS |= {"source_url", "original_url", "user_id", "tenant_id", "conversation_id", "file_key"}
SPEC = {
    "variable": "doc", "allowed_file_types": ["document"], "allowed_file_extensions": [],
    "allowed_file_upload_methods": ["local_file", "remote_url"],
}  # fmt: skip


@pytest.fixture(scope="module")
def files_fake() -> Iterator[FakeDifyProcess]:
    with running_fake_dify("--variables", "doc:Doc:file,docs:Docs:file-list", "--ping-interval", "0.2") as fake:
        yield fake


@pytest.fixture
def fake(files_fake: FakeDifyProcess) -> FakeDifyProcess:
    files_fake.restore()
    return files_fake


def upload(fake: FakeDifyProcess, name: str = "a.pdf", data: bytes = b"%PDF", **fields: Any) -> httpx.Response:
    files = {"file": (name, data, "application/pdf" if name.endswith(".pdf") else "application/octet-stream")}
    return httpx.post(fake.url + "/files/upload", headers=AUTH, files=files, data=fields, timeout=10)


def run(fake: FakeDifyProcess, inputs: dict[str, Any], user: str = "u", mode: str = "blocking") -> httpx.Response:
    body = {"inputs": inputs, "response_mode": mode, "user": user}
    return httpx.post(fake.url + "/workflows/run", headers=AUTH, json=body, timeout=10)


def local(upload_id: str, kind: str = "document") -> dict[str, str]:
    return {"type": kind, "transfer_method": "local_file", "upload_file_id": upload_id}


def test_an_upload_answers_difys_fourteen_keys_and_needs_no_user(fake):
    answer = upload(fake)

    assert answer.status_code == 201
    assert set(answer.json()) == UPLOAD_KEYS
    assert run(fake, {"doc": local(answer.json()["id"])}).status_code == 200


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"content": b"not multipart", "headers": {**AUTH, "Content-Type": "text/plain"}}, 400, "no_file_uploaded"),
        (
            {
                "content": b'--b\r\nContent-Disposition: form-data; name="file"; filename=""\r\n\r\nx\r\n--b--\r\n',
                "headers": {**AUTH, "Content-Type": "multipart/form-data; boundary=b"},
            },
            400,
            "filename_not_exists_error",
        ),
        ({"files": {"file": ("a.pdf", b"x"), "file2": ("b.pdf", b"y")}}, 400, "too_many_files"),
        ({"files": {"file": ("Q1: a?.pdf", b"x")}}, 400, "invalid_param"),
        ({"files": {"file": ("big.png", bytes(10 * 2**20 + 1))}}, 413, "file_too_large"),
    ],
)
def test_an_upload_dify_refuses_is_refused_alike(fake, request_kwargs, status, code):
    kwargs = {"headers": AUTH, **request_kwargs}

    answer = httpx.post(fake.url + "/files/upload", timeout=10, **kwargs)

    assert (answer.status_code, answer.json()["code"]) == (status, code)


def test_a_blacklisted_extension_is_refused_with_difys_words(fake):
    fake.configure(upload_blacklist="exe")

    answer = upload(fake, "setup.EXE")

    assert answer.json()["message"] == "File extension '.exe' is not allowed for security reasons"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"type": "custom", "transfer_method": "local_file", "upload_file_id": "UPLOADED"}, file_checks.TYPE_MISMATCH),
        (
            {"type": "document", "transfer_method": "local_file", "upload_file_id": "a/b.pdf"},
            "Invalid upload file id format",
        ),
        ({"type": "document", "transfer_method": "local_file", "id": "x"}, "Invalid upload file id"),
        (local("7c1e9a52-3f4d-4b8e-a6c0-91d2e3f4a5b6"), "Invalid upload file"),
        ({"type": "document", "transfer_method": "base64"}, "No matching enum found for value 'base64'"),
        ({"type": "document", "url": "https://x.test/a.pdf"}, "transfer_method is required in file mapping"),
        ({"type": "document", "transfer_method": "remote_url", "url": "https://x.test/get"}, file_checks.TYPE_MISMATCH),
        (
            {"type": "document", "transfer_method": "remote_url", "url": "https://x.test/d.pptx"},
            file_checks.TYPE_MISMATCH,
        ),
    ],
)
def test_a_file_mapping_dify_refuses_is_refused_with_difys_message(fake, mapping, message):
    uploaded = upload(fake).json()["id"]
    mapping = {key: uploaded if value == "UPLOADED" else value for key, value in mapping.items()}

    answer = run(fake, {"doc": mapping})

    assert (answer.status_code, answer.json()["message"]) == (400, message)


def test_the_remote_url_key_is_read_and_a_file_list_drops_incomplete_mappings(fake):
    docs = [
        {"type": "document", "transfer_method": "remote_url", "url": "https://x.test/a.pdf"},
        {"type": "document", "transfer_method": "remote_url"},
        {"type": "document", "url": "https://x.test/c.pdf"},
    ]
    doc = {"type": "document", "transfer_method": "remote_url", "remote_url": "https://x.test/b.pdf"}

    assert run(fake, {"doc": doc, "docs": docs}).status_code == 200
    too_many = run(fake, {"docs": docs[:1] * 6}).json()["message"]
    assert too_many == "docs in input form must be less than 5 files"


def test_newer_dify_knows_an_upload_only_for_its_uploaders_runs(fake):
    fake.configure(newer_dify=True)
    uploaded = upload(fake, user="batch-1").json()["id"]

    assert run(fake, {"doc": local(uploaded)}, user="batch-1").status_code == 200
    assert run(fake, {"doc": local(uploaded)}, user="batch-2").json()["message"] == "Invalid upload file"


def test_a_streamed_call_whose_file_is_refused_gets_one_ping_and_silence(fake):
    fake.configure(refusal_silence=0.5)
    started = time.monotonic()

    answer = run(fake, {"doc": local("7c1e9a52-3f4d-4b8e-a6c0-91d2e3f4a5b6")}, mode="streaming")

    assert answer.status_code == 200 and answer.text == "event: ping\n\n"
    assert time.monotonic() - started >= 0.5


@pytest.mark.parametrize(
    ("extension", "etl", "kind"),
    [(".pdf", "default", "document"), (".pptx", "default", "custom"), (".pptx", "unstructured", "document")],
)
def test_the_servers_etl_decides_what_a_document_is(extension, etl, kind):
    assert file_checks.detect(extension, "application/octet-stream", etl) == kind


@pytest.mark.parametrize(
    ("kind", "extension", "method", "spec", "valid"),
    [
        ("custom", ".pdf", "local_file", {**SPEC, "allowed_file_extensions": [".pdf"]}, True),
        ("custom", ".pdf", "local_file", {**SPEC, "allowed_file_extensions": [".PDF"]}, False),
        ("custom", ".zip", "local_file", SPEC, False),
        (
            "image",
            ".png",
            "remote_url",
            {**SPEC, "allowed_file_types": ["image"], "allowed_file_upload_methods": ["local_file"]},
            True,
        ),
        ("document", ".pdf", "remote_url", {**SPEC, "allowed_file_upload_methods": ["local_file"]}, False),
        ("document", ".pdf", "local_file", {**SPEC, "allowed_file_types": ["image"]}, False),
    ],
)
def test_a_variables_config_is_checked_as_dify_checks_it(kind, extension, method, spec, valid):
    assert file_checks.valid(kind, extension, method, spec) is valid


def test_size_limits_can_be_lifted_for_benchmarks(fake):
    fake.configure(size_limits=False)

    assert upload(fake, "big.png", bytes(10 * 2**20 + 1)).status_code == 201


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
