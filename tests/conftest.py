"""Fixtures shared by the tests: objects, a logged-in client, the file inputs' fake Dify, two batches to compare."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from batches.choices import ExecutionStatus
from batches.models import BatchTask, Execution, Workflow
from fakedify.harness import FakeDifyProcess, running_fake_dify
from tests.compare_rows import fill


@pytest.fixture(scope="session", autouse=True)
def _collected_static_files_for_servers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A web server with DEBUG off refuses to start without collectstatic's manifest (batches.E001): the servers
    that tests start (runserver, gunicorn) inherit a collected STATIC_ROOT."""
    if os.environ.get("DJANGO_STATIC_ROOT"):
        return
    root = tmp_path_factory.mktemp("static")
    env = {**os.environ, "DJANGO_STATIC_ROOT": str(root)}
    command = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
    subprocess.run(command, cwd=Path(__file__).resolve().parents[1], env=env, check=True, timeout=120)
    os.environ["DJANGO_STATIC_ROOT"] = str(root)


@pytest.fixture(autouse=True)
def _static_files_without_collectstatic(settings: Any) -> None:
    """Pages render without a collectstatic run; tests/scenarios/test_production.py serves the hashed files for real."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def make_workflow(db: None) -> Any:
    def make(**fields: Any) -> Workflow:
        defaults: dict[str, Any] = {
            "name": f"wf-{Workflow.objects.count() + 1}",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": "app-secret-key",
        }
        return Workflow.objects.create(**{**defaults, **fields})

    return make


@pytest.fixture
def make_batch(make_workflow: Any) -> Any:
    def make(rows: int = 3, workflow: Workflow | None = None, **fields: Any) -> BatchTask:
        workflow = workflow or make_workflow()
        batch = BatchTask.objects.create(
            name=fields.pop("name", "batch"), workflow=workflow, config=workflow.snapshot(), total=rows, **fields
        )
        Execution.objects.bulk_create(Execution(batch=batch, index=i, inputs={"text": f"row {i}"}) for i in range(rows))
        return batch

    return make


@pytest.fixture
def login(client: Client, django_user_model: Any) -> Any:
    """Log the test client in as a new user with the given permissions ("app.codename")."""

    def login(*perms: str, staff: bool = True) -> Client:
        user = django_user_model.objects.create_user(f"user{django_user_model.objects.count()}", is_staff=staff)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        client.force_login(user)
        return client

    return login


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDifyProcess]:
    """The file inputs' fake Dify: its app takes a file `doc` (required) and a text. Modules that want another app,
    and tests/dify/ and tests/fakedify/, have a `fake` of their own."""
    with running_fake_dify("--variables", "doc:Document:required:file,text:Text") as server:
        yield server


@pytest.fixture
def files_dir(settings: Any, tmp_path: Path) -> Path:
    """The files of ZIP imports are kept in a folder of this test's own (modules of file tests use it throughout)."""
    settings.BATCHES_FILES_DIR = tmp_path / "files"
    return settings.BATCHES_FILES_DIR


# Two batches to compare: tests/selectors/test_compare.py and tests/views/test_compare.py.


@pytest.fixture
def pair(make_batch: Any) -> tuple[BatchTask, BatchTask, dict[int, int], dict[int, int]]:
    """A: q1 q2 q1 q3 (q1 twice); B in another order, q1 once more, q3 missing, q4 new, keys reordered."""
    a, b = make_batch(rows=0, columns=["q", "n"]), make_batch(rows=0, columns=["q", "n"])
    ids_a = fill(
        a,
        [
            ({"q": "一", "n": 1}, ExecutionStatus.SUCCEEDED, {"text": "甲", "score": 1}),
            ({"q": "two", "n": 2}, ExecutionStatus.SUCCEEDED, {"text": "B", "score": 2}),
            ({"q": "一", "n": 1}, ExecutionStatus.SUCCEEDED, {"text": "乙", "score": 1}),
            ({"q": "three", "n": 3}, ExecutionStatus.FAILED, None),
        ],
    )
    ids_b = fill(
        b,
        [
            ({"n": 2, "q": "two"}, ExecutionStatus.SUCCEEDED, {"score": 2, "text": "B"}),
            ({"q": "一", "n": 1}, ExecutionStatus.SUCCEEDED, {"text": "甲", "score": 1}),
            ({"q": "四", "n": 4}, ExecutionStatus.SUCCEEDED, {"text": "D", "score": 4}),
            ({"q": "一", "n": 1}, ExecutionStatus.SUCCEEDED, {"text": "丙", "score": 1}),
            ({"q": "一", "n": 1}, ExecutionStatus.FAILED, None),
        ],
    )
    return a, b, ids_a, ids_b


@pytest.fixture
def two(make_batch: Any) -> tuple[BatchTask, BatchTask, dict[int, int], dict[int, int]]:
    """Two files about the same products with other prompts: only the `sku` column and the row order agree."""
    a, b = make_batch(rows=0, columns=["sku", "prompt"]), make_batch(rows=0, columns=["sku", "prompt"])
    ids_a = fill(
        a,
        [
            ({"sku": "A1", "prompt": "describe"}, ExecutionStatus.SUCCEEDED, {"text": "a red mug"}),
            ({"sku": "B2", "prompt": "describe"}, ExecutionStatus.SUCCEEDED, {"text": "a blue cup"}),
            ({"sku": "C3", "prompt": "describe"}, ExecutionStatus.SUCCEEDED, {"text": "a green bowl"}),
        ],
    )
    ids_b = fill(
        b,
        [
            ({"sku": "B2", "prompt": "describe briefly"}, ExecutionStatus.SUCCEEDED, {"text": "a blue cup"}),
            ({"sku": "A1", "prompt": "describe briefly"}, ExecutionStatus.SUCCEEDED, {"text": "a big red mug"}),
        ],
    )
    return a, b, ids_a, ids_b
