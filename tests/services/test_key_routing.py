"""A key is only ever sent to the base URL it was entered for (issue 27, H1), over real HTTP to two servers that
record every Authorization header they get."""

from collections.abc import Iterator

import pytest
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.imports.inputs import InputError
from batches.models import Execution
from batches.runner.worker import Runner
from batches.services import lifecycle, workflows
from tests.keyserver import KeyServer, key_server

OWN_KEY, REAL_KEY = "app-attackers-own-key", "app-the-real-key-0001"


@pytest.fixture
def attacker() -> Iterator[KeyServer]:
    with key_server() as server:
        yield server


@pytest.fixture
def real() -> Iterator[KeyServer]:
    with key_server() as server:
        yield server


@pytest.fixture
def moved_batch(make_workflow, make_batch, attacker, real):
    """A batch imported while the workflow pointed at the attacker's server; then the real URL and key came back."""
    workflow = make_workflow(base_url=attacker.url, api_key=OWN_KEY, response_mode="blocking")
    batch = make_batch(rows=3, workflow=workflow, status=BatchStatus.PENDING)
    workflows.save_workflow(workflow.name, base_url=real.url, api_key=REAL_KEY)
    return batch


def test_starting_a_batch_made_for_another_url_never_sends_the_current_key_there(moved_batch, attacker, real):
    # One row was interrupted mid-call: a take-over would first look its run up (GET /workflows/run/{id}).
    Execution.objects.filter(batch=moved_batch, index=0).update(
        status=ExecutionStatus.RUNNING, workflow_run_id="run-1", lease_owner="gone", lease_expires_at=timezone.now()
    )
    lifecycle.start_batch(moved_batch.pk)

    Runner().run(seconds=10)

    assert REAL_KEY not in attacker.bearers()
    assert real.seen == []  # nor does it silently run on the new Dify: staff choose
    moved_batch.refresh_from_db()
    assert moved_batch.status == BatchStatus.PAUSED
    assert "moved" in moved_batch.status_reason
    assert not Execution.objects.filter(batch=moved_batch, status=ExecutionStatus.SUCCEEDED).exists()


def test_edit_and_retry_of_a_moved_batch_asks_no_server_with_the_current_key(moved_batch, attacker, real):
    row = Execution.objects.filter(batch=moved_batch).first()

    with pytest.raises(InputError, match="moved"):
        lifecycle.typed_inputs(row, edited={"text": "edited"})

    assert attacker.seen == real.seen == []


def test_a_batch_pointed_again_runs_on_the_new_dify_with_the_new_key_only(moved_batch, attacker, real):
    lifecycle.start_batch(moved_batch.pk)
    Runner().run(seconds=10)

    workflows.repoint_batch(moved_batch.pk)
    lifecycle.resume_batch(moved_batch.pk)
    Runner().run(seconds=10)

    moved_batch.refresh_from_db()
    assert moved_batch.status == BatchStatus.FINISHED
    assert moved_batch.config["base_url"] == real.url
    assert real.bearers() == {REAL_KEY}
    assert [path for _method, path, _auth in real.seen].count("/v1/workflows/run") == 3
    assert REAL_KEY not in attacker.bearers()


def test_a_corrected_key_for_the_same_url_takes_effect(make_workflow, make_batch, real):
    workflow = make_workflow(base_url=real.url, api_key="app-mistyped-key", response_mode="blocking")
    batch = make_batch(rows=2, workflow=workflow, status=BatchStatus.RUNNING)
    workflows.save_workflow(workflow.name, api_key=REAL_KEY)

    Runner().run(seconds=10)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED
    assert real.bearers() == {REAL_KEY}


def test_a_base_url_written_differently_is_the_same_place(make_workflow, make_batch, real):
    workflow = make_workflow(base_url=real.url, api_key=REAL_KEY, response_mode="blocking")
    batch = make_batch(rows=1, workflow=workflow, status=BatchStatus.RUNNING)
    workflows.save_workflow(workflow.name, base_url=real.url + "/")

    Runner().run(seconds=10)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED
