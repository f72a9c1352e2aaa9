"""Cost and latency: what Dify reported per row, and the batch's totals, percentiles and estimate."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.dify import answers
from batches.dify.types import CallResult
from batches.models import Execution
from batches.runner.worker import Runner
from batches.selectors.cost import batch_costs, compare_costs, estimate_for_file, row_cost
from batches.services import claims, results
from fakedify.harness import running_fake_dify
from tests.services.support import ok_result

CHAT_ANSWER = {
    "event": "message",
    "task_id": "t-1",
    "message_id": "m-1",
    "conversation_id": "c-1",
    "answer": "hello",
    "metadata": {"usage": {"total_tokens": 28, "total_price": "0.0000074", "currency": "USD", "latency": 0.874}},
}


def test_a_chat_answer_s_price_and_currency_are_read():
    result = answers.parse_blocking(CallResult(ok=False), json.dumps(CHAT_ANSWER).encode(), "chat")

    assert (result.ok, result.total_tokens, result.price, result.currency) == (True, 28, "0.0000074", "USD")
    assert result.elapsed == pytest.approx(0.874)


@pytest.mark.parametrize("value", [None, "", "abc", "-1", "NaN", "1e30"])
def test_an_unreadable_price_is_no_price(value):
    assert answers.price(value) == ""


def test_a_row_keeps_the_price_tokens_and_latency_of_its_successful_try(make_batch):
    batch = make_batch(rows=1, status=BatchStatus.RUNNING)
    (claim,) = claims.claim(batch.pk, owner="runner-a", limit=1)
    priced = ok_result(price="0.0000074", currency="USD", latency=0.8125, elapsed=0.874, total_tokens=28)

    results.record_results([(claim, priced)])

    row = Execution.objects.get()
    assert (row.price, row.currency, row.latency, row.elapsed, row.total_tokens) == (
        Decimal("0.0000074"),
        "USD",
        0.8125,
        0.874,
        28,
    )


def _rows(batch, latencies, **fields):
    for row, latency in zip(batch.executions.order_by("index"), latencies, strict=True):
        Execution.objects.filter(pk=row.pk).update(status=ExecutionStatus.SUCCEEDED, latency=latency, **fields)


def test_a_batch_s_cost_and_latency_percentiles(make_batch):
    batch = make_batch(rows=100, status=BatchStatus.FINISHED)
    _rows(batch, [float(n) for n in range(1, 101)], total_tokens=10, price=Decimal("0.001"), currency="USD")

    costs = batch_costs(batch)

    assert (costs.total_tokens, costs.cost, costs.currency) == (1000, Decimal("0.1"), "USD")
    assert not costs.cost_estimated
    assert (costs.latency_p50, costs.latency_p95, costs.latency_max) == (50.0, 95.0, 100.0)


def test_a_workflow_app_s_cost_is_an_estimate_from_its_price_per_1k_tokens(make_batch, make_workflow):
    workflow = make_workflow(price_per_1k_tokens=Decimal("0.5"))
    batch = make_batch(rows=2, workflow=workflow, status=BatchStatus.FINISHED)
    _rows(batch, [1.0, 3.0], total_tokens=300)

    costs = batch_costs(batch)

    assert (costs.cost, costs.cost_estimated, costs.currency) == (Decimal("0.3"), True, "USD")
    assert row_cost(batch.executions.first(), workflow) == (Decimal("0.15"), True)


def test_without_a_price_there_is_no_cost(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.FINISHED)
    _rows(batch, [1.0, 2.0], total_tokens=300)

    assert batch_costs(batch).cost is None


def test_batch_status_json_adds_cost_and_latency_and_keeps_its_keys(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.FINISHED)
    _rows(batch, [1.0, 2.0], total_tokens=5, price=Decimal("0.25"), currency="USD")
    out = StringIO()

    call_command("batch_status", str(batch.pk), "--json", stdout=out)

    data = json.loads(out.getvalue())
    contract = ["id", "name", "status", "total", "pending", "running", "succeeded", "failed", "cancelled"]
    contract += ["total_tokens", "created_at", "started_at", "finished_at", "upstream"]
    assert list(data)[: len(contract)] == contract
    assert data["total_tokens"] == 10
    assert (data["cost"], data["currency"], data["latency_p50"], data["latency_max"]) == ("0.500000", "USD", 1.0, 2.0)


def test_compare_shows_the_deltas_of_tokens_cost_and_latency(make_batch, login):
    a = make_batch(rows=2, status=BatchStatus.FINISHED)
    b = make_batch(rows=2, status=BatchStatus.FINISHED)
    _rows(a, [1.0, 3.0], total_tokens=10, price=Decimal("0.01"), currency="USD")
    _rows(b, [2.0, 6.0], total_tokens=25, price=Decimal("0.02"), currency="USD")

    lines = {line.label: line for line in compare_costs(a, b)}
    page = login("batches.view_batchtask").get(f"/batches/{a.pk}/compare/{b.pk}/").content.decode()

    assert (lines["Tokens"].a, lines["Tokens"].b, lines["Tokens"].delta) == (20, 50, 30)
    assert lines["Cost"].delta == Decimal("0.02")
    assert (lines["Latency p50"].delta, lines["Latency p95"].delta) == (1.0, 3.0)
    assert 'id="costs"' in page and "+30" in page


def test_new_batch_estimates_a_file_from_the_workflow_s_recent_rows(make_batch, make_workflow):
    workflow = make_workflow(price_per_1k_tokens=Decimal("2"))
    earlier = make_batch(rows=4, workflow=workflow, status=BatchStatus.FINISHED, started_at=timezone.now())
    _rows(earlier, [1.0] * 4, total_tokens=100)

    estimate = estimate_for_file(workflow, 1000)

    assert (estimate.tokens, estimate.mean_tokens, estimate.from_rows) == (100_000, 100.0, 4)
    assert (estimate.cost, estimate.currency) == (Decimal("200"), "USD")


def test_without_history_there_is_no_estimate(make_workflow):
    assert estimate_for_file(make_workflow(), 10) is None


def test_results_json_and_the_row_page_show_a_row_s_latency_and_price(make_batch, login):
    batch = make_batch(rows=1, status=BatchStatus.FINISHED)
    _rows(batch, [0.5], total_tokens=28, elapsed=0.874, price=Decimal("0.0000074"), currency="USD")
    client = login("batches.view_batchtask")
    row = batch.executions.get()

    [data] = client.get(f"/batches/{batch.pk}/results.json").json()["results"]
    page = client.get(f"/executions/{row.pk}/").content.decode()

    assert (data["latency"], data["elapsed"], data["price"], data["currency"]) == (0.5, 0.874, "0.0000074", "USD")
    assert "0.0000074 USD" in page


@pytest.mark.parametrize("response_mode", ["streaming", "blocking"])
def test_a_chat_batch_s_cost_and_tokens_equal_what_the_fake_dify_reported(make_workflow, make_batch, response_mode):
    with running_fake_dify() as fake:
        workflow = make_workflow(base_url=fake.url, mode="chat", response_mode=response_mode)
        batch = make_batch(rows=0, workflow=workflow, status=BatchStatus.RUNNING)
        Execution.objects.bulk_create(
            Execution(batch=batch, index=i, inputs={"query": "q" * (8 * i + 1)}) for i in range(3)
        )

        Runner().run(seconds=30)

    rows = list(Execution.objects.filter(batch=batch).order_by("index"))
    assert [row.status for row in rows] == ["succeeded"] * 3
    for row in rows:
        assert row.total_tokens > 10 and row.currency == "USD" and row.latency > 0
        assert row.price == (Decimal("0.000002") * row.total_tokens).quantize(Decimal("0.0000001"))
    costs = batch_costs(batch)
    assert costs.cost == sum(row.price for row in rows).quantize(Decimal("0.000001"))
    assert costs.total_tokens == sum(row.total_tokens for row in rows) and not costs.cost_estimated


def test_compare_shows_each_pair_s_token_and_latency_delta(make_batch, login):
    a = make_batch(rows=1, status=BatchStatus.FINISHED)
    b = make_batch(rows=1, status=BatchStatus.FINISHED)
    _rows(a, [1.25], total_tokens=10)
    _rows(b, [0.75], total_tokens=22)

    page = login("batches.view_batchtask").get(f"/batches/{a.pk}/compare/{b.pk}/").content.decode()

    assert "+12 tokens · -0.50 s" in page
