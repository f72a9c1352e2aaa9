"""The production stack as README "Production" runs it: collectstatic, gunicorn (2 workers, DEBUG off), two worker
clusters on two "machines" (BATCHES_NODE_NAME), PostgreSQL; a 300-row batch through the pages; the units' stop."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.urls import URLPattern

from batches import urls as batch_urls
from batches.models import BatchTask, Execution, Workflow
from fakedify.harness import running_fake_dify
from tests.processes import ROOT, wait_until
from tests.scenarios.test_deploy import seconds, service
from tests.stack import Web, process_tree, production_env, running_gunicorn, still_running, stop_main_process

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="production runs on PostgreSQL")
ROWS = 300
USER, PASSWORD = "operator", "a-long-operator-password"


class Assets(HTMLParser):
    """The stylesheets and scripts a page links."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}  # url: the content type it must have

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "link" and found.get("rel") == "stylesheet" and found.get("href"):
            self.urls[str(found["href"])] = "text/css"
        if tag == "script" and found.get("src"):
            self.urls[str(found["src"])] = "text/javascript"


def manage(*args: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=production_env(**env), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def start_cluster(log: Path, node: str, static_root: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=production_env(BATCHES_NODE_NAME=node, DJANGO_STATIC_ROOT=str(static_root)),
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def csrf_token(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def log_in(web: Web) -> httpx.Client:
    client = httpx.Client(base_url=web.url, timeout=30)
    token = csrf_token(client, "/admin/login/")
    answer = client.post("/admin/login/?next=/", data={"csrfmiddlewaretoken": token, "username": USER,
                                                       "password": PASSWORD, "next": "/"})  # fmt: skip
    assert answer.status_code == 302 and answer.headers["location"] == "/"
    return client


def run_batch_through_the_pages(client: httpx.Client, workflow_id: int) -> int:
    rows = "text\n" + "".join(f"row {i}\n" for i in range(ROWS))
    upload = client.post(
        "/batches/new/upload/",
        data={"csrfmiddlewaretoken": csrf_token(client, "/batches/new/"), "workflow": str(workflow_id)},
        files={"file": ("rows.csv", rows.encode(), "text/csv")},
    )
    assert upload.status_code == 302, upload.text[:2000]
    options = {"name": "production", "concurrency": "10", "max_retries": "2", "start": "on"}
    imported = client.post(
        "/batches/new/import/", data={"csrfmiddlewaretoken": csrf_token(client, "/batches/new/preview/"), **options}
    )
    assert imported.status_code == 302, imported.text[:2000]
    return int(re.fullmatch(r"/batches/(\d+)/", imported.headers["location"]).group(1))


def staff_page_paths(batch: BatchTask, execution: Execution) -> Iterator[str]:
    """Every GET page of the batches app, with real ids; then the admin's index, lists and a change page."""
    values = {"pk": batch.pk, "fmt": "csv", "action": "start"}
    for pattern in batch_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        pk = execution.pk if route.startswith("executions") else batch.workflow_id if "workflow" in route else batch.pk
        yield "/" + re.sub(
            r"<(?:\w+:)?(\w+)>", lambda m: str(pk if m[1] == "pk" else values.get(m[1], batch.pk)), route
        )
    yield "/admin/"
    for model in ("workflow", "batchtask", "execution", "attempt"):
        yield f"/admin/batches/{model}/"
    yield f"/admin/batches/batchtask/{batch.pk}/change/"


def check_pages_and_their_assets(client: httpx.Client, batch: BatchTask) -> dict[str, str]:
    assets: dict[str, str] = {}
    for path in staff_page_paths(batch, Execution.objects.filter(batch=batch).first()):
        page = client.get(path)
        assert page.status_code in (200, 302, 405), f"{path}: {page.status_code}"
        if page.status_code == 200 and page.headers["content-type"].startswith("text/html"):
            parser = Assets()
            parser.feed(page.text)
            assets.update(parser.urls)
    compressed = 0
    for url, content_type in assets.items():
        answer = client.get(url, headers={"accept-encoding": "gzip"})
        compressed += answer.headers.get("content-encoding") == "gzip"
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].split(";")[0] == content_type, url
        if url.startswith("/static/"):  # the admin's jsi18n script is a view, the rest collected files
            assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", url), f"{url} is not a hashed (cacheable) name"
            assert "immutable" in answer.headers["cache-control"], url
    assert compressed, "no stylesheet or script was served compressed"
    return assets


def test_the_production_stack_serves_every_page_runs_a_batch_and_stops_cleanly(transactional_db, tmp_path,
                                                                               django_user_model):  # fmt: skip
    static_root = tmp_path / "static"
    manage("collectstatic", "--noinput", DJANGO_STATIC_ROOT=str(static_root))
    django_user_model.objects.create_superuser(USER, password=PASSWORD)
    stop_timeout = seconds(service("worker")["TimeoutStopSec"])

    with running_fake_dify("--latency-ms", "200", "--variables", "text:Text:required") as fake:
        manage("add_workflow", "prod", "--base-url", fake.url, "--api-key", "app-production-key")
        clusters = {node: start_cluster(tmp_path / f"{node}.log", node, static_root) for node in ("node-a", "node-b")}
        trees: dict[int, str] = {}
        try:
            with running_gunicorn(tmp_path / "web.log", workers=2, DJANGO_STATIC_ROOT=str(static_root)) as web:
                client = log_in(web)
                wait_until(lambda: client.get("/healthz").json()["workers"]["clusters"] == 2, 60)
                batch_id = run_batch_through_the_pages(client, Workflow.objects.get(name="prod").pk)

                # An upgrade of machine A mid-batch: SIGTERM to its cluster's main process, then a new one.
                wait_until(lambda: Execution.objects.filter(batch_id=batch_id, status="succeeded").count() >= 30, 60)
                tree = process_tree(clusters["node-a"].pid)
                began = time.monotonic()
                stop_main_process(clusters["node-a"], grace=stop_timeout)
                assert time.monotonic() - began < stop_timeout and clusters["node-a"].returncode == 0
                assert still_running(tree) == []
                clusters["node-a"] = start_cluster(tmp_path / "node-a.log", "node-a", static_root)

                progress = f"/batches/{batch_id}/progress.json"
                wait_until(lambda: client.get(progress).json()["status"] == "finished", 120, interval=1)
                batch = BatchTask.objects.get(pk=batch_id)
                assets = check_pages_and_their_assets(client, batch)
                with client.stream("GET", f"/batches/{batch_id}/export/csv/") as export:
                    headers, lines = export.headers, sum(chunk.count(b"\n") for chunk in export.iter_bytes())
                health = client.get("/healthz").json()
                trees = {**process_tree(web.process.pid), **process_tree(clusters["node-b"].pid),
                         **process_tree(clusters["node-a"].pid)}  # fmt: skip
        finally:
            for process in clusters.values():
                stop_main_process(process, grace=stop_timeout)

    assert Execution.objects.filter(batch_id=batch_id, status="succeeded").count() == ROWS
    assert {".css", ".js"} <= {Path(url).suffix for url in assets}
    assert headers.get("transfer-encoding") == "chunked" and "content-length" not in headers  # streamed
    assert lines >= ROWS + 1
    assert health["status"] == "ok" and health["workers"]["clusters"] == 2
    assert len(trees) >= 3 + 2 * 5 and still_running(trees) == []
