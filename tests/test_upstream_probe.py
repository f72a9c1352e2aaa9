"""Staff probe an upstream by hand: `probe_upstream` closes the circuit when Dify answers, and only then."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from batches.models import CircuitState, WorkflowThrottle
from tests.fakedify import free_port, running_fake_dify


def probe_upstream(name: str) -> str:
    out = StringIO()
    call_command("probe_upstream", name, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def open_circuit(workflow) -> None:
    now = timezone.now()
    WorkflowThrottle.objects.create(
        workflow=workflow,
        circuit=CircuitState.OPEN,
        circuit_since=now,
        outage_streak=8,
        next_probe_at=now + timedelta(minutes=1),
        probe_backoff=60,
    )


def test_probe_closes_the_circuit_when_dify_answers(make_workflow):
    with running_fake_dify() as fake:
        workflow = make_workflow(base_url=fake.url)
        open_circuit(workflow)

        printed = probe_upstream(workflow.name)

    assert printed == "closed"
    assert WorkflowThrottle.objects.get().circuit == CircuitState.CLOSED


def test_probe_keeps_the_circuit_open_when_nothing_listens(make_workflow):
    workflow = make_workflow(base_url=f"http://127.0.0.1:{free_port()}/v1")
    open_circuit(workflow)

    printed = probe_upstream(workflow.name)

    throttle = WorkflowThrottle.objects.get()
    assert printed == "open"
    assert throttle.last_error == "connection: the upstream could not be reached"


def test_probe_of_a_closed_circuit_that_fails_does_not_open_it(make_workflow):
    workflow = make_workflow(base_url=f"http://127.0.0.1:{free_port()}/v1")

    assert probe_upstream(workflow.name) == "closed"


def test_probe_names_a_missing_workflow(db):
    with pytest.raises(CommandError, match="workflow 'nope' does not exist"):
        probe_upstream("nope")


def test_probe_never_calls_a_link_local_address(make_workflow):
    workflow = make_workflow(base_url="http://169.254.169.254/v1")
    open_circuit(workflow)

    printed = probe_upstream(workflow.name)

    assert printed == "open"
    assert WorkflowThrottle.objects.get().last_error.startswith("app_error:")
