"""Fixtures of the page tests: a private uploads folder, the app's variables, a controller, failed batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from batches.choices import ErrorType
from batches.dify import pages
from batches.dify.types import InputVariable
from batches.imports import uploads as upload_storage
from batches.models import BatchTask, Execution
from tests.views.helpers import ADD, CONTROL, RETRY, E, S, fail_rows, set_rows


@pytest.fixture(autouse=True)
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Uploads waiting between preview and import go to a folder of this test's own."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr(upload_storage, "uploads_dir", lambda: folder)
    return folder


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[InputVariable] | None], None]:
    """Make the app's GET /parameters answer these variables (None: unreachable)."""

    def answer(found: list[InputVariable] | None) -> None:
        monkeypatch.setattr(pages, "fetch_parameters", lambda app, timeout=5: found)

    return answer


@pytest.fixture
def controller(login: Any) -> Client:
    return login(CONTROL, RETRY, ADD)


@pytest.fixture
def failed_batch(make_batch: Any) -> BatchTask:
    batch = make_batch(rows=4, status=S.FINISHED)
    fail_rows(batch, 2)
    return batch


@pytest.fixture
def target(make_batch: Any) -> tuple[BatchTask, Execution]:
    """A running batch of three rows whose first row failed."""
    batch = make_batch(rows=3, status=S.RUNNING)
    fail_rows(batch, 1)
    return batch, batch.executions.get(index=0)


@pytest.fixture
def mixed_batch(make_batch: Any) -> BatchTask:
    """Rows 0-1 failed upstream_error, 2-3 failed timeout, 4 succeeded, 5 cancelled."""
    batch = make_batch(rows=6, status=S.FINISHED)
    fail_rows(batch, 2)
    set_rows(batch, [2, 3], status=E.FAILED, error_type=ErrorType.TIMEOUT)
    set_rows(batch, [4], status=E.SUCCEEDED)
    set_rows(batch, [5], status=E.CANCELLED, error_type=ErrorType.CANCELLED)
    return batch


@pytest.fixture
def file_app(variables: Callable[[list[InputVariable] | None], None], files_dir: Path) -> None:
    """The app declares a file variable and a text; the ZIPs' files go to a folder of this test's own."""
    document = InputVariable("doc", "Document", required=True, type="file", allowed_file_types=("document",))
    variables([document, InputVariable("text", "Text")])
