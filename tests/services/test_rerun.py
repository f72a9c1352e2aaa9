"""Run again: all, failed or selected rows as a new batch, on the same or another workflow, linked both ways."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from batches.choices import BatchStatus, ErrorType, ExecutionStatus
from batches.dify.types import InputVariable
from batches.models import BatchTask, Execution
from batches.services import rerun as rerun_service
from batches.services.rerun import Only, RerunError, RerunOptions, rerun_batch
from fakedify.harness import running_fake_dify

E = ExecutionStatus
ADD = "batches.add_batchtask"
CONTROL = "batches.control_batchtask"


@pytest.fixture
def source(make_batch: Any) -> BatchTask:
    """Five rows, the 2nd and 4th failed, the 5th cancelled; inputs in a key order that must survive."""
    batch = make_batch(rows=5, columns=["b", "a"], status=BatchStatus.FINISHED, max_retries=4)
    for index in range(5):
        Execution.objects.filter(batch=batch, index=index).update(
            inputs={"b": f"第{index}行", "a": index}, status=E.SUCCEEDED, outputs={"x": index}
        )
    Execution.objects.filter(batch=batch, index__in=[1, 3]).update(status=E.FAILED, error_type=ErrorType.TIMEOUT)
    Execution.objects.filter(batch=batch, index=4).update(status=E.CANCELLED, error_type=ErrorType.CANCELLED)
    return batch


def inputs_of(batch: BatchTask) -> list[tuple[int, dict[str, Any]]]:
    return [(row.index, row.inputs) for row in Execution.objects.filter(batch=batch).order_by("index")]


def run(*args: Any) -> str:
    out = StringIO()
    call_command("rerun_batch", *args, stdout=out)
    return out.getvalue()


def test_all_rows_become_a_new_pending_batch_with_the_same_inputs_in_order(source: BatchTask) -> None:
    batch = rerun_batch(source.pk, options=RerunOptions(start=False))

    assert inputs_of(batch) == inputs_of(source)
    assert [list(inputs) for _, inputs in inputs_of(batch)] == [["b", "a"]] * 5  # key order kept
    assert set(Execution.objects.filter(batch=batch).values_list("status", "outputs", "error_type")) == {
        (E.PENDING, None, "")
    }
    assert (batch.status, batch.total, batch.columns, batch.max_retries) == (BatchStatus.PENDING, 5, ["b", "a"], 4)
    assert batch.source == source and list(source.reruns.all()) == [batch]


def test_failed_rows_only_are_numbered_from_the_first(source: BatchTask) -> None:
    batch = rerun_batch(source.pk, options=RerunOptions(only=Only.FAILED, start=False))

    assert inputs_of(batch) == [(0, {"b": "第1行", "a": 1}), (1, {"b": "第3行", "a": 3})]
    assert batch.total == 2


def test_selected_rows_ignore_ids_of_other_batches(source: BatchTask, make_batch: Any) -> None:
    other = make_batch(rows=1)
    wanted = [Execution.objects.get(batch=source, index=i).pk for i in (4, 0)]
    stranger = Execution.objects.get(batch=other).pk

    batch = rerun_batch(source.pk, options=RerunOptions(only=Only.SELECTED, execution_ids=[*wanted, stranger]))

    assert [inputs["a"] for _, inputs in inputs_of(batch)] == [0, 4]


def test_other_workflow_and_own_settings(source: BatchTask, make_workflow: Any) -> None:
    other = make_workflow(name="v2", concurrency=7, timeout=12)

    batch = rerun_batch(source.pk, options=RerunOptions(workflow=other, name="try v2", max_retries=0, start=True))

    assert (batch.workflow, batch.name, batch.concurrency, batch.max_retries) == (other, "try v2", 7, 0)
    assert batch.config["timeout"] == 12
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.RUNNING


def test_other_workflow_missing_a_required_variable_is_refused(source: BatchTask, make_workflow: Any) -> None:
    with running_fake_dify("--variables", "a:A:required,query_text:Query:required") as fake:
        other = make_workflow(name="strict", base_url=fake.url)

        with pytest.raises(RerunError, match="query_text"):
            rerun_batch(source.pk, options=RerunOptions(workflow=other))

    assert BatchTask.objects.count() == 1


def test_nothing_to_run_again_creates_nothing(make_batch: Any) -> None:
    batch = make_batch(rows=2)

    with pytest.raises(RerunError, match="no failed rows"):
        rerun_batch(batch.pk, options=RerunOptions(only=Only.FAILED))

    assert BatchTask.objects.count() == 1


def test_command_prints_the_new_id_last(source: BatchTask, make_workflow: Any) -> None:
    make_workflow(name="v2")

    out = run(str(source.pk), "--workflow", "v2", "--only", "failed", "--name", "again", "--no-start")

    batch = BatchTask.objects.get(pk=int(out.strip().splitlines()[-1]))
    assert (batch.name, batch.workflow.name, batch.total, batch.status) == ("again", "v2", 2, BatchStatus.PENDING)
    assert batch.source_id == source.pk


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999999"], "batch 999999 does not exist"),
        (["{id}", "--workflow", "nope"], "workflow 'nope' does not exist"),
        (["{id}", "--name", "x" * 201], "longer than 200"),
    ],
)
def test_command_refuses_bad_input_in_one_line(source: BatchTask, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*(arg.format(id=source.pk) for arg in args))

    assert BatchTask.objects.count() == 1


def test_command_refuses_an_unknown_only(source: BatchTask) -> None:
    with pytest.raises(CommandError):
        run(str(source.pk), "--only", "selected")


def test_page_runs_failed_rows_again_and_links_both_ways(login: Any, source: BatchTask, make_workflow: Any) -> None:
    other = make_workflow(name="v2")
    client = login(ADD, CONTROL)  # starting at once needs the control permission (issue 27, L5)
    form = client.get(reverse("batches:batch_rerun", args=[source.pk]), {"only": "failed"})
    assert "2 failed rows" in form.content.decode()

    response = client.post(
        reverse("batches:batch_rerun", args=[source.pk]),
        {"only": "failed", "workflow": other.pk, "name": "", "max_retries": 1, "start": "on"},
    )

    batch = BatchTask.objects.exclude(pk=source.pk).get()
    assert response.status_code == 302 and response["Location"] == reverse("batches:batch_detail", args=[batch.pk])
    assert (batch.total, batch.workflow, batch.status) == (2, other, BatchStatus.RUNNING)
    compare = reverse("batches:batch_compare", args=[source.pk, batch.pk])
    assert compare in client.get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()
    assert compare in client.get(reverse("batches:batch_detail", args=[source.pk])).content.decode()


def test_page_runs_selected_rows_from_the_results_page(login: Any, source: BatchTask) -> None:
    client = login(ADD)
    ids = [Execution.objects.get(batch=source, index=i).pk for i in (2, 3)]
    results = client.get(reverse("batches:batch_results", args=[source.pk])).content.decode()
    assert reverse("batches:batch_rerun", args=[source.pk]) in results

    form = client.get(reverse("batches:batch_rerun", args=[source.pk]), {"only": "selected", "execution": ids})
    posted = client.post(
        reverse("batches:batch_rerun", args=[source.pk]),
        {"only": "selected", "execution": ids, "workflow": source.workflow_id, "max_retries": 2},
    )

    assert "2 selected rows" in form.content.decode()
    batch = BatchTask.objects.exclude(pk=source.pk).get()
    assert posted.status_code == 302 and [inputs["a"] for _, inputs in inputs_of(batch)] == [2, 3]
    assert batch.status == BatchStatus.PENDING  # "start" left unticked


@pytest.mark.parametrize(
    "data",
    [
        {"only": "selected", "max_retries": 2},
        {"only": "selected", "execution": ["1", "x"], "max_retries": 2},
        {"only": "everything", "max_retries": 2},
        {"only": "all", "max_retries": -1},
        {"only": "all", "max_retries": 2, "workflow": "999999"},
    ],
)
def test_page_refuses_bad_input_without_creating_anything(login: Any, source: BatchTask, data: dict) -> None:
    client = login(ADD)

    response = client.post(reverse("batches:batch_rerun", args=[source.pk]), {"workflow": source.workflow_id, **data})

    assert response.status_code == 400
    assert BatchTask.objects.count() == 1


# ------------------------------------------------------------------ another app: the checks and mapping of an import

STRICT = [InputVariable("text", "Text", required=True, max_length=5), InputVariable("n", "N", type="number")]


@pytest.fixture
def strict_app(monkeypatch: pytest.MonkeyPatch, make_workflow: Any) -> Any:
    monkeypatch.setattr(rerun_service, "read_input_variables", lambda workflow, config=None: STRICT)
    return make_workflow


def test_another_app_refuses_columns_it_does_not_know(source: BatchTask, strict_app: Any) -> None:
    with pytest.raises(RerunError, match=r"^workflow v2: unknown column\(s\) 'b', 'a'; the app expects: 'text'"):
        rerun_batch(source.pk, options=RerunOptions(workflow=strict_app(name="v2")))

    assert BatchTask.objects.count() == 1


def test_another_app_takes_the_rows_through_a_mapping_and_its_types(source: BatchTask, strict_app: Any) -> None:
    Execution.objects.filter(batch=source).update(inputs={"b": "short", "a": "7"})
    options = RerunOptions(workflow=strict_app(name="v2"), mapping={"b": "text", "a": "n"}, start=False)

    batch = rerun_batch(source.pk, options=options)

    assert inputs_of(batch)[0] == (0, {"text": "short", "n": 7})
    assert batch.columns == ["text", "n"]


def test_another_app_refuses_a_text_over_its_limit_naming_the_row(source: BatchTask, strict_app: Any) -> None:
    Execution.objects.filter(batch=source, index=2).update(inputs={"b": "far too long", "a": 1})
    options = RerunOptions(workflow=strict_app(name="v2"), mapping={"b": "text", "a": ""})

    with pytest.raises(RerunError, match=r"^row 3: .*5"):
        rerun_batch(source.pk, options=options)

    assert BatchTask.objects.count() == 1


def test_an_ignored_column_is_kept_with_the_row(source: BatchTask, strict_app: Any) -> None:
    Execution.objects.filter(batch=source).update(inputs={"b": "ok", "a": 1})

    batch = rerun_batch(source.pk, options=RerunOptions(workflow=strict_app(name="v2"), mapping={"b": "text", "a": ""}))

    row = Execution.objects.get(batch=batch, index=0)
    assert (row.inputs, row.extra, batch.extra_columns) == ({"text": "ok"}, {"a": 1}, ["a"])


def test_a_chat_app_takes_its_query_from_a_mapped_column(source: BatchTask, strict_app: Any) -> None:
    Execution.objects.filter(batch=source).update(inputs={"b": "ok", "a": "hi?"})
    chat = strict_app(name="chat", mode="chat")

    with pytest.raises(RerunError, match="missing required column 'query'"):
        rerun_batch(source.pk, options=RerunOptions(workflow=chat, mapping={"b": "text", "a": ""}))
    batch = rerun_batch(source.pk, options=RerunOptions(workflow=chat, mapping={"b": "text", "a": "query"}))

    assert inputs_of(batch)[0] == (0, {"text": "ok", "query": "hi?"})


def test_page_maps_columns_for_another_app(login: Any, source: BatchTask, strict_app: Any) -> None:
    Execution.objects.filter(batch=source).update(inputs={"b": "ok", "a": "hi?"})
    chat = strict_app(name="chat", mode="chat")
    client = login(ADD)
    data = {"only": "all", "workflow": chat.pk, "max_retries": 1}
    page = reverse("batches:batch_rerun", args=[source.pk])

    refused = client.post(page, data)
    client.post(page, {**data, "columns": "b=text\na=query"})

    assert refused.status_code == 400 and "unknown column(s)" in refused.content.decode()
    assert inputs_of(BatchTask.objects.get(workflow=chat))[0] == (0, {"text": "ok", "query": "hi?"})


def test_command_maps_columns_for_another_app(source: BatchTask, strict_app: Any) -> None:
    Execution.objects.filter(batch=source).update(inputs={"b": "ok", "a": "hi?"})
    strict_app(name="chat", mode="chat")

    with pytest.raises(CommandError, match=r"^batch \d+: workflow chat: unknown column\(s\) 'b', 'a'"):
        run(str(source.pk), "--workflow", "chat")
    new_id = int(run(str(source.pk), "--workflow", "chat", "--map", "b=text", "--map", "a=query").split()[-1])

    assert inputs_of(BatchTask.objects.get(pk=new_id))[0] == (0, {"text": "ok", "query": "hi?"})
