"""The command line of design.md: names, options, stdout and errors."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.models import BatchTask, Execution, Workflow, WorkflowThrottle
from fakedify.harness import running_fake_dify

COST_KEYS = {"cost", "currency", "cost_estimated", "latency_p50", "latency_p95", "latency_max", "rows_per_minute"}
SUMMARY_KEYS = {
    "upstream",
    "id",
    "name",
    "status",
    "total",
    "pending",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "total_tokens",
    "created_at",
    "started_at",
    "finished_at",
}


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def workflow(db):
    run("add_workflow", "wf", "--base-url", "http://127.0.0.1:9/v1", "--api-key", "app-secret")
    return Workflow.objects.get(name="wf")


def test_add_workflow_prints_the_name_and_updates_on_a_second_call(workflow):
    assert run("add_workflow", "wf", "--concurrency", "7", "--mode", "chat").strip() == "wf"

    workflow.refresh_from_db()
    assert (workflow.concurrency, workflow.mode, workflow.api_key) == (7, "chat", "app-secret")


def test_add_workflow_rejects_a_bad_url(db):
    with pytest.raises(CommandError, match="base_url"):
        run("add_workflow", "wf", "--base-url", "not a url", "--api-key", "k")


def test_import_prints_the_batch_id_last_and_starts_it(workflow, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("text\nhello\nworld\n", encoding="utf-8")

    batch_id = int(run("import_batch", str(source), "--workflow", "wf", "--name", "greetings").splitlines()[-1])

    batch = BatchTask.objects.get(pk=batch_id)
    assert (batch.name, batch.status, batch.total, batch.source_filename) == ("greetings", "running", 2, "rows.csv")
    assert list(Execution.objects.filter(batch=batch).values_list("inputs", flat=True)) == [
        {"text": "hello"},
        {"text": "world"},
    ]


def test_import_with_no_start_leaves_the_batch_pending_until_start_batch(workflow, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("text\nhello\n", encoding="utf-8")
    batch_id = run("import_batch", str(source), "--workflow", "wf", "--no-start").splitlines()[-1]

    assert BatchTask.objects.get(pk=batch_id).status == BatchStatus.PENDING
    run("start_batch", batch_id)
    assert BatchTask.objects.get(pk=batch_id).status == BatchStatus.RUNNING


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.csv", b""),
        ("header.csv", b"text\n"),
        ("ragged.csv", b"text,lang\na,b\nc\n"),
        ("binary.csv", b"\x00\x01\x02text\n"),
        ("notes.pdf", b"%PDF-1.4"),
        ("bad.jsonl", b'{"text": "a"}\nnot json\n'),
    ],
)
def test_bad_input_is_a_one_line_error_and_creates_nothing(workflow, tmp_path, name, content):
    source = tmp_path / name
    source.write_bytes(content)

    with pytest.raises(CommandError) as error:
        run("import_batch", str(source), "--workflow", "wf")

    assert "\n" not in str(error.value)
    assert not BatchTask.objects.exists()
    assert not Execution.objects.exists()


def test_import_names_an_unknown_workflow(db, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("text\na\n", encoding="utf-8")

    with pytest.raises(CommandError, match="workflow 'nope' does not exist"):
        run("import_batch", str(source), "--workflow", "nope")


def test_batch_status_json_has_the_documented_keys(make_batch):
    batch = make_batch(rows=3, status=BatchStatus.RUNNING)
    Execution.objects.filter(index=0).update(status=ExecutionStatus.SUCCEEDED, total_tokens=5)

    one = json.loads(run("batch_status", str(batch.pk), "--json"))
    every = json.loads(run("batch_status", "--json"))

    assert set(one) == SUMMARY_KEYS | COST_KEYS  # design.md's keys, and issue 31's after them
    assert (one["total"], one["pending"], one["succeeded"], one["total_tokens"]) == (3, 2, 1, 5)
    assert one["upstream"] == {"state": "closed", "since": None, "last_error": "", "next_probe_at": None}
    assert every == [one]


def test_batch_status_json_shows_an_open_upstream_circuit(make_batch):
    batch = make_batch(rows=1, status=BatchStatus.RUNNING)
    now = timezone.now()
    WorkflowThrottle.objects.create(
        workflow=batch.workflow,
        circuit="open",
        circuit_since=now,
        last_error="HTTP 502 upstream_error: x",
        next_probe_at=now + timedelta(seconds=8),
    )

    upstream = json.loads(run("batch_status", str(batch.pk), "--json"))["upstream"]

    assert (upstream["state"], upstream["last_error"]) == ("open", "HTTP 502 upstream_error: x")
    assert upstream["since"].endswith("Z") and upstream["next_probe_at"] > upstream["since"]


@pytest.mark.parametrize(
    ("outage", "state", "heard"), [(None, "closed", "HTTP 200"), ("bad_gateway", "open", "HTTP 502")]
)
def test_probe_upstream_prints_the_circuit_state_and_what_the_health_check_heard(make_workflow, outage, state, heard):
    with running_fake_dify() as fake:
        workflow = make_workflow(base_url=fake.url)
        WorkflowThrottle.objects.create(workflow=workflow, circuit="open", circuit_since=timezone.now())
        fake.configure(outage=outage)
        out, err = StringIO(), StringIO()

        call_command("probe_upstream", workflow.name, stdout=out, stderr=err)

        assert fake.stats()["parameters_calls"] == 1
    assert out.getvalue() == f"{state}\n"
    assert f"health check (GET /parameters): {heard}" in err.getvalue()


@pytest.mark.parametrize("command", ["batch_status", "start_batch", "pause_batch", "cancel_batch", "retry_failed"])
def test_commands_name_a_missing_batch(db, command):
    with pytest.raises(CommandError, match="batch 999 does not exist"):
        run(command, "999")


def test_pause_of_a_pending_batch_is_refused(make_batch):
    batch = make_batch()

    with pytest.raises(CommandError, match="cannot be paused"):
        run("pause_batch", str(batch.pk))


def test_pause_resume_cancel(make_batch):
    batch = make_batch(status=BatchStatus.RUNNING)

    run("pause_batch", str(batch.pk))
    run("resume_batch", str(batch.pk))
    run("cancel_batch", str(batch.pk))

    batch.refresh_from_db()
    assert batch.status == BatchStatus.CANCELLED
    assert Execution.objects.filter(status=ExecutionStatus.CANCELLED).count() == 3


def test_retry_failed_by_execution_id(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.FINISHED)
    Execution.objects.update(status=ExecutionStatus.FAILED)
    first = Execution.objects.get(index=0)

    out = run("retry_failed", str(batch.pk), "--execution", str(first.pk))

    assert "queued 1 " in out
    assert list(Execution.objects.order_by("index").values_list("status", flat=True)) == ["pending", "failed"]


def test_export_jsonl_to_a_file(make_batch, tmp_path):
    batch = make_batch(rows=2)
    target = tmp_path / "out.jsonl"

    run("export_batch", str(batch.pk), "--format", "jsonl", "--output", str(target))

    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [line["index"] for line in lines] == [0, 1]
    assert "app-secret-key" not in target.read_text(encoding="utf-8")


def test_recover_batches_json_parses_and_dry_run_changes_nothing(make_batch):
    batch = make_batch(rows=1, status=BatchStatus.RUNNING)
    Execution.objects.update(status=ExecutionStatus.SUCCEEDED)

    report = json.loads(run("recover_batches", "--dry-run", "--json"))

    assert report[0]["id"] == batch.pk and report[0]["finished"] is True
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.RUNNING
