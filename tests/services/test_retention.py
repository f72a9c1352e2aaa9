"""Retention (issue 30): old ended batches go with their rows, attempts and files, in chunks, never a batch with
rows to run; a prune killed midway leaves nothing half-deleted in sight, and the next prune finishes it."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.models import Attempt, BatchCount, BatchFile, BatchTask, Execution
from batches.models.ops import AuditEntry
from batches.selectors import batches as selectors
from batches.services import lifecycle, retention
from batches.services.file_uploads import stored_path
from tests.admin.helpers import attempt_for

OLD = timezone.now() - timedelta(days=40)


@pytest.fixture
def old_batch(make_batch):
    def make(rows=5, status=BatchStatus.FINISHED, row_status=ExecutionStatus.SUCCEEDED, finished_at=OLD):
        batch = make_batch(rows=rows, status=status, finished_at=finished_at)
        Execution.objects.filter(batch=batch).update(status=row_status)
        attempt_for(batch.executions.get(index=0))
        return batch

    return make


def prune_command(*args):
    out = StringIO()
    call_command("prune_batches", *args, stdout=out)
    return out.getvalue().strip()


def test_old_ended_batches_go_with_their_rows_attempts_and_counts(old_batch, make_batch):
    finished, cancelled = old_batch(), old_batch(status=BatchStatus.CANCELLED, row_status=ExecutionStatus.CANCELLED)
    recent = old_batch(finished_at=timezone.now())

    assert prune_command("--older-than", "30") == "deleted 2 batches, 10 executions, 2 attempts, 0 files"

    assert list(BatchTask.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not Execution.objects.filter(batch_id__in=[finished.pk, cancelled.pk]).exists()
    assert Attempt.objects.count() == 1
    assert not BatchCount.objects.filter(batch_id__in=[finished.pk, cancelled.pk]).exists()


def test_a_dry_run_names_the_counts_and_deletes_nothing(old_batch):
    old_batch(rows=7)

    assert (
        prune_command("--older-than", "30", "--dry-run") == "would delete 1 batches, 7 executions, 1 attempts, 0 files"
    )

    assert Execution.objects.count() == 7


@pytest.mark.parametrize(("status", "pruned"), [("finished", 1), ("cancelled", 1), ("finished,cancelled", 2)])
def test_status_chooses_which_ended_batches_go(old_batch, status, pruned):
    old_batch()
    old_batch(status=BatchStatus.CANCELLED, row_status=ExecutionStatus.CANCELLED)

    prune_command("--older-than", "30", "--status", status)

    assert BatchTask.objects.count() == 2 - pruned


@pytest.mark.parametrize("status", ["running", "finished,paused", ""])
def test_status_refuses_anything_but_ended_states(db, status):
    with pytest.raises(CommandError):
        prune_command("--older-than", "30", "--status", status)


@pytest.mark.parametrize("status", [BatchStatus.RUNNING, BatchStatus.PAUSED, BatchStatus.PENDING])
def test_a_batch_that_has_not_ended_is_never_touched(old_batch, status):
    batch = old_batch(status=status, row_status=ExecutionStatus.PENDING)

    prune_command("--older-than", "0")

    assert Execution.objects.filter(batch=batch).count() == 5


def test_an_ended_batch_with_a_row_to_run_is_never_touched(old_batch):
    batch = old_batch()
    Execution.objects.filter(batch=batch, index=2).update(status=ExecutionStatus.PENDING)

    prune_command("--older-than", "30")

    assert Execution.objects.filter(batch=batch).count() == 5


def test_rows_go_in_chunks_each_its_own_transaction(old_batch, monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr(retention, "CHUNK", 4)
    old_batch(rows=10)
    chunks = []
    delete_chunk = retention._delete_chunk
    monkeypatch.setattr(
        retention, "_delete_chunk", lambda batch_id: chunks.append(delete_chunk(batch_id)) or chunks[-1]
    )

    prune_command("--older-than", "30")

    assert [executions for executions, _ in chunks] == [4, 4, 2]
    assert Execution.objects.count() == 0


def test_pruning_twice_is_harmless(old_batch):
    old_batch()

    prune_command("--older-than", "30")

    assert prune_command("--older-than", "30") == "deleted 0 batches, 0 executions, 0 attempts, 0 files"


def test_a_prune_killed_midway_hides_the_batch_and_the_next_prune_finishes_it(old_batch, admin_client, monkeypatch):
    batch = old_batch(rows=10)
    monkeypatch.setattr(retention, "CHUNK", 4)
    original = retention._delete_chunk
    calls = []

    def killed_after_one_chunk(batch_id):
        if calls:
            raise KeyboardInterrupt  # the process dies between two chunks
        calls.append(1)
        return original(batch_id)

    monkeypatch.setattr(retention, "_delete_chunk", killed_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        prune_command("--older-than", "30")
    assert Execution.objects.filter(batch=batch).count() == 6  # half-deleted…

    assert batch.pk not in [item.pk for item in selectors.batches()]  # …and out of sight
    assert admin_client.get(f"/batches/{batch.pk}/").status_code == 404
    assert batch.pk not in [row["id"] for row in json.loads(_status_json())]

    monkeypatch.setattr(retention, "_delete_chunk", original)
    assert prune_command("--older-than", "365") == "deleted 1 batches, 6 executions, 0 attempts, 0 files"
    assert not BatchTask.objects.filter(pk=batch.pk).exists()


def _status_json():
    out = StringIO()
    call_command("batch_status", "--json", stdout=out)
    return out.getvalue()


def test_files_on_disk_go_unless_a_rerun_still_names_them(
    old_batch, make_batch, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.BATCHES_FILES_DIR = tmp_path
    batch, rerun = old_batch(), make_batch(rows=1, status=BatchStatus.FINISHED, finished_at=timezone.now())
    for name in ("own.png", "shared.png"):
        (tmp_path / "import-1").mkdir(exist_ok=True)
        (tmp_path / "import-1" / name).write_bytes(b"x")
        BatchFile.objects.create(batch=batch, name=name, size=1, stored=f"import-1/{name}")
    BatchFile.objects.create(batch=rerun, name="shared.png", size=1, stored="import-1/shared.png")

    with django_capture_on_commit_callbacks(execute=True):
        report = retention.prune(retention.prunable(older_than_days=30))

    assert report.files == 2
    assert not stored_path("import-1/own.png").exists()
    assert stored_path("import-1/shared.png").exists()


def test_a_row_retried_while_its_batch_was_being_pruned_brings_the_batch_back(old_batch, monkeypatch):
    batch = old_batch(row_status=ExecutionStatus.FAILED)
    monkeypatch.setattr(retention, "CHUNK", 2)
    original = retention._delete_chunk

    def retried_meanwhile(batch_id):
        got = original(batch_id)
        if Execution.objects.filter(batch_id=batch_id).count() == 3:
            lifecycle.retry_failed(batch_id)
        return got

    monkeypatch.setattr(retention, "_delete_chunk", retried_meanwhile)
    retention.prune(retention.prunable(older_than_days=30))

    batch.refresh_from_db()
    assert batch.pruning_since is None and batch.status == BatchStatus.RUNNING
    assert Execution.objects.filter(batch=batch, status=ExecutionStatus.PENDING).count() == 3


def test_the_sweep_prunes_old_batches_only_when_keep_days_is_set(old_batch, settings):
    old_batch()
    settings.BATCHES_KEEP_DAYS = None
    assert retention.prune_old().batches == 0
    assert BatchTask.objects.count() == 1

    settings.BATCHES_KEEP_DAYS = 30
    report = retention.prune_old()

    assert report.batches == 1
    assert BatchTask.objects.count() == 0


def test_the_sweep_always_finishes_a_prune_left_half_done(old_batch, settings):
    settings.BATCHES_KEEP_DAYS = None
    batch = old_batch(finished_at=timezone.now())
    BatchTask.objects.filter(pk=batch.pk).update(pruning_since=timezone.now())

    assert retention.prune_old().batches == 1

    assert not BatchTask.objects.filter(pk=batch.pk).exists()


def test_the_doctor_shows_retention_and_a_prune_left_half_done(old_batch, settings):
    settings.BATCHES_KEEP_DAYS = 30
    old_batch()
    half = old_batch()
    BatchTask.objects.filter(pk=half.pk).update(pruning_since=timezone.now() - timedelta(hours=2))
    out = StringIO()

    with pytest.raises(SystemExit):
        call_command("batches_doctor", "--json", stdout=out)

    facts = json.loads(out.getvalue())
    assert facts["retention"]["keep_days"] == 30 and facts["retention"]["due"] == 2
    assert [batch["id"] for batch in facts["retention"]["pruning"]] == [half.pk]
    assert any("half pruned" in problem for problem in facts["problems"])


def test_a_marked_batch_whose_rows_were_retried_since_shows_again_at_the_next_prune(old_batch):
    batch = old_batch(row_status=ExecutionStatus.FAILED)
    BatchTask.objects.filter(pk=batch.pk).update(pruning_since=timezone.now())  # a prune killed after marking
    lifecycle.retry_failed(batch.pk)

    retention.prune_old()

    batch.refresh_from_db()
    assert batch.pruning_since is None
    assert Execution.objects.filter(batch=batch).count() == 5


def test_a_prune_leaves_one_audit_entry_naming_who_and_which_batches(old_batch):
    batch = old_batch(rows=3)

    prune_command("--older-than", "30")
    retention.prune(BatchTask.objects.none())  # nothing pruned: nothing recorded

    entry = AuditEntry.objects.get(action=AuditEntry.Action.PRUNE)
    assert (entry.face, entry.actor.startswith("os:"), entry.rows, entry.detail) == (
        "cli", True, 3, {"batches": [batch.pk]}
    )  # fmt: skip
