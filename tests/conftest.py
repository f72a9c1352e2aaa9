"""Small object helpers shared by the tests."""

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

from batches.models import BatchTask, Execution, Workflow
from fakedify.harness import FakeDifyProcess, running_fake_dify


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
