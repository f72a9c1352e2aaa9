"""Smaller hardening: the template's formula text, wide tables, keys echoed in outputs, the CSP, the proxy header
and JSON 404s."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import runpy
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from django.test import Client
from django.urls import reverse
from openpyxl import load_workbook

from batches.dify.types import InputVariable
from batches.exports.batches import export_chunks
from batches.imports.importers import ImportFileError, parse_file
from batches.models import Execution
from tests.dify.test_hostile import API_KEY, app_for, call, upstream
from tests.test_settings import SECURE_ENV, shown_settings


def test_the_csv_template_neutralises_formula_labels_but_not_numbers(admin_client: Client, make_workflow: Any) -> None:
    labels = ["=cmd|' /C calc'!A0", "@SUM(A1)", "-3.5", "+8613800000000", "plain"]
    variables = [dataclasses.asdict(InputVariable(f"v{i}", label)) for i, label in enumerate(labels)]
    workflow = make_workflow(input_variables=variables)

    response = admin_client.get(reverse("batches:workflow_template", args=[workflow.pk]))

    assert response.content.decode("utf-8-sig") == "'=cmd|' /C calc'!A0,'@SUM(A1),-3.5,+8613800000000,plain\r\n"


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


def test_an_import_wider_than_an_export_can_hold_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.jsonl"
    path.write_text(json.dumps({f"c{i}": i for i in range(16_001)}) + "\n")

    with pytest.raises(ImportFileError, match=r"^16001 columns: at most 16000"):
        parse_file(path)


def test_outputs_that_echo_the_key_are_masked() -> None:
    async def echo(request: web.Request) -> web.Response:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        data = {"status": "succeeded", "outputs": {"answer": f"your key is {key}", key: [key[:12] + "…"]}}
        return web.json_response({"workflow_run_id": "r1", "task_id": "t1", "data": data})

    with upstream(echo) as url:
        result, _ = call(app_for(url))

    assert result.ok
    assert API_KEY[:8] not in json.dumps(result.outputs)
    assert result.outputs == {"answer": "your key is ***", "***": ["***…"]}


def pages(batch: Any) -> list[str]:
    execution = Execution.objects.get(batch=batch)
    return [
        reverse("batches:batch_list"),
        reverse("batches:batch_detail", args=[batch.pk]),
        reverse("batches:batch_failures", args=[batch.pk]),
        reverse("batches:execution_detail", args=[execution.pk]),
        reverse("batches:batch_new"),
        reverse("admin:index"),
        reverse("admin:batches_batchtask_changelist"),
        reverse("admin:batches_execution_change", args=[execution.pk]),
        reverse("admin:batches_workflow_change", args=[batch.workflow_id]),
    ]


def test_every_page_has_a_csp_without_unsafe_inline_and_nothing_inline(admin_client: Client, make_batch: Any) -> None:
    batch = make_batch(rows=1)
    Execution.objects.filter(batch=batch).update(status="failed", error_type="timeout", error="slow")

    for page in pages(batch):
        response = admin_client.get(page)

        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, page
        assert "unsafe-inline" not in policy
        html = response.content.decode()
        assert not re.search(r"\sstyle=", html), page
        assert not re.search(r"<style", html), page
        inline = [tag for tag in re.findall(r"<script[^>]*>", html) if "src=" not in tag]
        assert all('type="application/json"' in tag for tag in inline), (page, inline)


def gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """The settings deploy/gunicorn.conf.py gives under `env` (gunicorn reads the module's globals)."""
    monkeypatch.delenv("DJANGO_TRUST_X_FORWARDED_PROTO", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"
    return runpy.run_path(str(path))


@pytest.mark.parametrize(("trust", "headers"), [(None, {}), ("0", {}), ("1", {"X-FORWARDED-PROTO": "https"})])
def test_gunicorn_trusts_a_forwarded_scheme_only_when_asked(monkeypatch: pytest.MonkeyPatch, trust, headers) -> None:
    """gunicorn's default trusts X-Forwarded-Proto, -Ssl and -Protocol from 127.0.0.1 whatever Django is told."""
    env = {"DJANGO_TRUST_X_FORWARDED_PROTO": trust} if trust is not None else {}

    assert gunicorn_config(monkeypatch, **env)["secure_scheme_headers"] == headers


def test_x_forwarded_proto_is_trusted_only_when_asked() -> None:
    env = {**SECURE_ENV, "DJANGO_ALLOWED_HOSTS": "testserver"}

    assert shown_settings(**env)["SECURE_PROXY_SSL_HEADER"] is None
    assert shown_settings(**env, DJANGO_TRUST_X_FORWARDED_PROTO="1")["SECURE_PROXY_SSL_HEADER"] == [
        "HTTP_X_FORWARDED_PROTO",
        "https",
    ]


@pytest.mark.parametrize(
    ("name", "method"), [("batch_retry_json", "post"), ("batch_progress_json", "get"), ("batch_failures_json", "get")]
)
def test_json_endpoints_answer_a_missing_batch_in_json(admin_client: Client, db: None, name: str, method: str) -> None:
    response = getattr(admin_client, method)(reverse(f"batches:{name}", args=[10**9]), {"scope": "all"})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Not found."}


def test_the_xlsx_export_stays_readable_with_text_cells(make_batch: Any) -> None:
    batch = make_batch(rows=1)
    Execution.objects.filter(batch=batch).update(inputs={"text": "=1+1"})

    content = b"".join(export_chunks(batch, "xlsx"))

    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "=1+1" in sheet
