"""DifyClient against the fake Dify over real HTTP (both transports): calls, faults, runs, stop, limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from batches.dify.client import DifyClient, tls_context
from batches.dify.types import CallResult
from fakedify.harness import FakeDifyProcess, free_port
from tests.dify.support import API_KEY, MODES, TRANSPORTS, app_for, call, expected_outputs, run

# ----------------------------------------------------------------------------------------------- successes


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("mode", "response_mode"), MODES)
def test_a_call_succeeds_with_outputs_echoing_its_inputs(
    fake: FakeDifyProcess, transport: str, mode: str, response_mode: str
) -> None:
    started: list[tuple[str, str]] = []
    inputs = {"text": "héllo, 世界", "n": 2, "query": "why?"}

    async def go() -> CallResult:
        async with DifyClient(transport) as client:
            return await client.run(
                app_for(fake, mode, response_mode), inputs, user="u", on_started=lambda *ids: started.append(ids)
            )

    result = run(go())
    assert result.ok, result.error
    outputs = dict(result.outputs or {})
    outputs.pop("conversation_id", None)
    assert outputs == expected_outputs(mode, inputs)  # chat sends query apart; the fake echoes it back in
    assert result.error_type == ""
    assert result.total_tokens > 10
    assert result.task_id
    assert result.upstream_status == "succeeded"
    if mode == "workflow":
        assert result.workflow_run_id
    if response_mode == "streaming":
        assert started == [(result.workflow_run_id, result.stop_task_id or result.task_id)]
    else:
        assert started == []


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("response_mode", ["streaming", "blocking"])
def test_each_answer_gives_its_connection_back_to_the_pool(
    fake: FakeDifyProcess, transport: str, response_mode: str
) -> None:
    app = app_for(fake, "workflow", response_mode, timeout=1.5)
    rows = [{"text": "a"}, {"text": "b", "_fault": "server_error"}, {"text": "c", "_fault": "hang"}, {"text": "d"}]

    async def one_connection() -> list[CallResult]:
        async with DifyClient(transport, max_connections=1) as client:  # a kept connection would stall the next
            return [await client.run(app, row, user="u") for row in rows]

    answers = run(one_connection())
    assert [(result.ok, result.error_type) for result in answers] == [
        (True, ""), (False, "upstream_error"), (False, "timeout"), (True, "")
    ]  # fmt: skip


def test_chat_outputs_carry_the_conversation_id(fake: FakeDifyProcess) -> None:
    result = run(call(app_for(fake, "chat"), {"query": "hi"}))
    assert result.ok
    assert result.outputs is not None and result.outputs["conversation_id"]


def test_a_chat_row_without_query_is_invalid_input_without_calling(fake: FakeDifyProcess) -> None:
    result = run(call(app_for(fake, "chat"), {"text": "x"}))
    assert (result.ok, result.error_type) == (False, "invalid_input")
    assert fake.stats()["calls"] == 0


def test_on_started_is_called_before_the_run_finishes(fake: FakeDifyProcess) -> None:
    seen: list[float] = []
    begin = time.monotonic()

    async def go() -> CallResult:
        async with DifyClient() as client:
            return await client.run(
                app_for(fake),
                {"_latency_ms": 500},
                user="u",
                on_started=lambda *_: seen.append(time.monotonic() - begin),
            )

    result = run(go())
    assert result.ok
    assert seen[0] < 0.4 < result.latency


# ----------------------------------------------------------------------------------------------- faults

FAULTS = [
    ("server_error", "upstream_error", 500),
    ("bad_gateway", "upstream_error", 502),
    ("rate_limit", "rate_limited", 429),
    ("too_many", "rate_limited", 429),
    ("reset", "connection", None),
    ("bad_json", "bad_response", 200),
    ("cut", "bad_response", 200),
    ("workflow_failed", "workflow_failed", None),
    ("invalid_param", "invalid_input", 400),
    ("app_unavailable", "app_error", 400),
    ("auth", "auth", 401),
    ("paused", "app_error", 200),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("mode", "response_mode"), MODES)
@pytest.mark.parametrize(("fault", "error_type", "http_status"), FAULTS)
def test_each_fault_becomes_its_error_type(
    fake: FakeDifyProcess,
    transport: str,
    mode: str,
    response_mode: str,
    fault: str,
    error_type: str,
    http_status: int | None,
) -> None:
    result = run(call(app_for(fake, mode, response_mode), {"query": "q", "_fault": fault}, transport))
    assert (result.ok, result.error_type) == (False, error_type), result.error
    if http_status is not None:
        assert result.http_status == http_status
    assert result.error and "\n" not in result.error and len(result.error) <= 500
    assert API_KEY not in result.error


@pytest.mark.parametrize(("fault", "retry_after"), [("rate_limit", 1.0), ("too_many", None)])
def test_retry_after_is_read_from_429_answers(fake: FakeDifyProcess, fault: str, retry_after: float | None) -> None:
    result = run(call(app_for(fake), {"_fault": fault}))
    assert result.retry_after == retry_after


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("response_mode", ["streaming", "blocking"])
def test_a_hanging_upstream_times_out_within_the_app_timeout(
    fake: FakeDifyProcess, transport: str, response_mode: str
) -> None:
    result = run(call(app_for(fake, response_mode=response_mode, timeout=0.5), {"_fault": "hang"}, transport))
    assert result.error_type == "timeout"
    assert 0.5 <= result.latency < 1.5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_endless_stream_of_pings_times_out_but_keeps_the_run_id(fake: FakeDifyProcess, transport: str) -> None:
    result = run(call(app_for(fake, timeout=0.6), {"_latency_ms": 60_000}, transport))
    assert result.error_type == "timeout"
    assert result.workflow_run_id and result.task_id
    assert result.latency < 1.5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_connection_is_a_connection_error(transport: str) -> None:
    result = run(call(app_for(f"http://127.0.0.1:{free_port()}/v1"), {"a": 1}, transport))
    assert result.error_type == "connection"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("response_mode", ["streaming", "blocking"])
def test_an_answer_over_the_size_cap_is_a_bad_response(
    fake: FakeDifyProcess, transport: str, response_mode: str
) -> None:
    app = app_for(fake, response_mode=response_mode)
    result = run(call(app, {"text": "x" * 5000}, transport, max_response_bytes=2000))
    assert result.error_type == "bad_response"
    assert "larger than" in result.error


def test_fault_times_fails_the_first_call_and_lets_the_retry_succeed(fake: FakeDifyProcess) -> None:
    inputs = {"text": "x", "_fault": "server_error", "_fault_times": 1}
    first, second = run(call(app_for(fake), inputs)), run(call(app_for(fake), inputs))
    assert (first.error_type, second.ok) == ("upstream_error", True)


# ----------------------------------------------------------------------------------------------- runs, stop, limits


async def _leave_mid_stream_then_poll(fake: FakeDifyProcess) -> tuple[CallResult, CallResult, CallResult]:
    async with DifyClient() as client:
        cut = await client.run(app_for(fake, timeout=0.3), {"text": "x", "_latency_ms": 800}, user="u")
        during = await client.get_workflow_run(app_for(fake), cut.workflow_run_id)
        await asyncio.sleep(0.8)
        after = await client.get_workflow_run(app_for(fake), cut.workflow_run_id)
    return cut, during, after


def test_a_run_the_client_left_mid_stream_finishes_and_can_be_fetched(fake: FakeDifyProcess) -> None:
    cut, during, after = run(_leave_mid_stream_then_poll(fake))
    assert cut.error_type == "timeout"
    assert (during.ok, during.upstream_status, during.error_type) == (False, "running", "")
    assert (after.ok, after.upstream_status) == (True, "succeeded")
    assert after.outputs == expected_outputs("workflow", {"text": "x", "_latency_ms": 800})
    assert fake.stats()["succeeded"] == 1


def test_fetching_an_unknown_run_is_an_app_error_with_status_404(fake: FakeDifyProcess) -> None:
    async def go() -> CallResult:
        async with DifyClient() as client:
            return await client.get_workflow_run(app_for(fake), "no-such-run")

    result = run(go())
    assert (result.ok, result.error_type, result.http_status) == (False, "app_error", 404)


def test_fetching_a_failed_run_reports_workflow_failed(fake: FakeDifyProcess) -> None:
    async def go() -> CallResult:
        async with DifyClient() as client:
            failed = await client.run(app_for(fake, response_mode="blocking"), {"_fault": "workflow_failed"}, user="u")
            return await client.get_workflow_run(app_for(fake), failed.workflow_run_id)

    result = run(go())
    assert (result.ok, result.error_type, result.upstream_status) == (False, "workflow_failed", "failed")


async def _start_then_stop(fake: FakeDifyProcess, mode: str) -> tuple[bool, CallResult]:
    app = app_for(fake, mode)
    async with DifyClient() as client:
        started: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        inputs = {"query": "q", "_latency_ms": 5000}
        task = asyncio.create_task(client.run(app, inputs, user="u", on_started=lambda *ids: started.put_nowait(ids)))
        _, task_id = await started.get()
        stopped = await client.stop(app, task_id, user="u")
        return stopped, await asyncio.wait_for(task, 3)


def test_stop_ends_a_streaming_workflow_run_as_failed_without_a_retry(fake: FakeDifyProcess) -> None:
    stopped, result = run(_start_then_stop(fake, "workflow"))
    assert stopped
    assert (result.ok, result.error_type, result.upstream_status) == (False, "workflow_failed", "stopped")
    assert result.final
    assert result.latency < 3


@pytest.mark.parametrize("mode", ["completion", "chat"])
def test_stop_ends_a_streaming_message_at_once(fake: FakeDifyProcess, mode: str) -> None:
    stopped, result = run(_start_then_stop(fake, mode))
    assert stopped
    assert result.latency < 3


def test_stop_returns_false_when_the_upstream_is_unreachable() -> None:
    async def go() -> bool:
        async with DifyClient() as client:
            return await client.stop(app_for(f"http://127.0.0.1:{free_port()}/v1"), "task", user="u")

    assert run(go()) is False


def test_rpm_limit_gives_rate_limited_with_retry_after(fake: FakeDifyProcess) -> None:
    fake.configure(rpm=2)
    results = [run(call(app_for(fake), {"i": i})) for i in range(3)]
    assert [result.ok for result in results] == [True, True, False]
    assert results[2].error_type == "rate_limited"
    assert results[2].retry_after is not None and 1 <= results[2].retry_after <= 60


async def _many(fake: FakeDifyProcess, count: int, transport: str, latency_ms: int = 300) -> list[CallResult]:
    async with DifyClient(transport) as client:
        calls = [client.run(app_for(fake), {"i": i, "_latency_ms": latency_ms}, user="u") for i in range(count)]
        return list(await asyncio.gather(*calls))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_max_active_limit_gives_rate_limited(fake: FakeDifyProcess, transport: str) -> None:
    fake.configure(max_active=4)
    results = run(_many(fake, 10, transport))
    assert sum(result.ok for result in results) == 4
    assert {result.error_type for result in results if not result.ok} == {"rate_limited"}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_twenty_concurrent_calls_are_all_in_flight_at_once(fake: FakeDifyProcess, transport: str) -> None:
    results = run(_many(fake, 20, transport))
    assert all(result.ok for result in results)
    stats = fake.stats()
    assert (stats["max_in_flight"], stats["succeeded"], stats["rows_paid_twice"]) == (20, 20, 0)


def test_a_row_run_twice_shows_as_paid_twice(fake: FakeDifyProcess) -> None:
    for _ in range(2):
        assert run(call(app_for(fake), {"text": "same"})).ok
    assert fake.stats()["rows_paid_twice"] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_client_of_a_process_shares_the_certificate_authorities_loaded_once(transport: str) -> None:
    async def contexts() -> list[object]:
        clients = [DifyClient(transport=transport) for _ in range(2)]
        pools = [client._http._transport for client in clients]
        found = [getattr(pool, "ssl_context", None) or pool._pool._ssl_context for pool in pools]
        for client in clients:
            await client.aclose()
        return found

    first, second = asyncio.run(contexts())

    assert first is second is tls_context()
