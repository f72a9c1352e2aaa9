"""The upstream circuit on the staff pages: the waiting notice on the batch page, the list and the progress JSON,
and the "Check Dify now" button."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from batches.choices import BatchStatus
from batches.models import WorkflowThrottle
from fakedify.harness import free_port, running_fake_dify

CONTROL = "batches.control_batchtask"
S = BatchStatus


def url(name, *args):
    return reverse(f"batches:{name}", args=args)


def open_circuit(workflow, **fields):
    now = timezone.now()
    defaults = {"circuit": "open", "circuit_since": now, "last_error": "HTTP 502 upstream_error: Bad Gateway"}
    WorkflowThrottle.objects.create(
        workflow=workflow, next_probe_at=now + timedelta(seconds=8), **{**defaults, **fields}
    )


def test_batch_page_and_list_say_the_batch_waits_for_dify(login, make_batch):
    client = login(CONTROL)
    batch = make_batch(rows=2, status=S.RUNNING)
    open_circuit(batch.workflow)

    detail = client.get(url("batch_detail", batch.pk)).content.decode()
    listed = client.get(url("batch_list")).content.decode()
    data = client.get(url("batch_progress_json", batch.pk)).json()

    for page in (detail, listed, data["waiting_for_dify"]):
        assert "Waiting for Dify since" in page and "HTTP 502 upstream_error: Bad Gateway" in page
    assert "next check in" in data["waiting_for_dify"]
    assert data["upstream"]["state"] == "open"
    assert "Check Dify now" in detail


def test_batch_page_says_nothing_of_dify_while_it_answers(login, make_batch):
    batch = make_batch(rows=2, status=S.RUNNING)

    detail = login(CONTROL).get(url("batch_detail", batch.pk)).content.decode()

    assert "Waiting for Dify since" not in detail


def test_check_now_closes_the_circuit_when_dify_answers(login, make_workflow, make_batch):
    client = login(CONTROL)
    with running_fake_dify() as fake:
        batch = make_batch(rows=2, workflow=make_workflow(base_url=fake.url), status=S.RUNNING)
        open_circuit(batch.workflow)

        response = client.post(url("batch_probe", batch.pk), follow=True)

    assert "Dify answers" in response.content.decode()
    assert WorkflowThrottle.objects.get().circuit == "closed"


def test_check_now_says_dify_does_not_answer_for_a_closed_port_while_the_circuit_is_closed(
    login, make_workflow, make_batch
):
    client = login(CONTROL)
    batch = make_batch(rows=2, workflow=make_workflow(base_url=f"http://127.0.0.1:{free_port()}/v1"), status=S.RUNNING)

    response = client.post(url("batch_probe", batch.pk), follow=True)

    html = response.content.decode()
    assert "Dify answers" not in html
    assert "Dify does not answer: connection: the upstream could not be reached" in html


def test_check_now_that_gets_no_answer_keeps_waiting_and_the_page_shows_what_the_check_heard(
    login, make_workflow, make_batch
):
    client = login(CONTROL)
    with running_fake_dify() as fake:
        batch = make_batch(rows=2, workflow=make_workflow(base_url=fake.url), status=S.RUNNING)
        open_circuit(batch.workflow)
        fake.configure(outage="bad_gateway")

        response = client.post(url("batch_probe", batch.pk), follow=True)

    page = response.content.decode()
    assert "Dify still does not answer: HTTP 502 upstream_error" in page
    assert "last check" in page and WorkflowThrottle.objects.get().circuit == "open"
