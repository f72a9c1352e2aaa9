"""The fake Dify server, spoken to over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.management import CommandError, call_command

from batches.fake_dify import FakeOptions, parse_faults, parse_variables
from tests.fakedify import FakeDify, running_fake_dify

AUTH = {"Authorization": "Bearer app-test"}
PATHS = {"workflow": "/workflows/run", "completion": "/completion-messages", "chat": "/chat-messages"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDify]:
    with running_fake_dify("--ping-interval", "0.2") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeDify) -> FakeDify:
    server.restore()
    return server


def body_for(mode: str, inputs: dict[str, Any], response_mode: str = "blocking") -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": inputs, "response_mode": response_mode, "user": "tester"}
    if mode == "chat":
        body["query"] = "hello"
    return body


def post(fake: FakeDify, mode: str, inputs: dict[str, Any], response_mode: str = "blocking") -> httpx.Response:
    return httpx.post(fake.url + PATHS[mode], json=body_for(mode, inputs, response_mode), headers=AUTH, timeout=10)


def sse_events(text: str) -> list[dict[str, Any]]:
    frames = [frame for frame in text.split("\n\n") if frame.startswith("data: ")]
    return [json.loads(frame[len("data: ") :]) for frame in frames]


def test_blocking_workflow_run_echoes_its_inputs(fake: FakeDify) -> None:
    inputs = {"text": "héllo", "n": 3}
    data = post(fake, "workflow", inputs).json()["data"]
    assert data["status"] == "succeeded"
    assert data["outputs"] == {"echo": inputs, "text": 'echo: {"n": 3, "text": "héllo"}'}
    assert data["total_tokens"] == 10 + len(data["outputs"]["text"]) // 4


@pytest.mark.parametrize(
    ("mode", "expected_answer"),
    [("completion", 'echo: {"text": "x"}'), ("chat", 'echo: {"query": "hello", "text": "x"}')],
)
def test_blocking_message_answer_echoes_inputs_and_query(fake: FakeDify, mode: str, expected_answer: str) -> None:
    body = post(fake, mode, {"text": "x"}).json()
    assert body["answer"] == expected_answer
    assert body["metadata"]["usage"]["total_tokens"] == 10 + len(expected_answer) // 4
    assert ("conversation_id" in body) == (mode == "chat")


def test_streaming_workflow_starts_with_workflow_started_and_ends_with_workflow_finished(fake: FakeDify) -> None:
    text = post(fake, "workflow", {"text": "x", "_latency_ms": 500}, "streaming").text
    events = sse_events(text)
    assert events[0]["event"] == "workflow_started"
    assert events[0]["workflow_run_id"] == events[-1]["workflow_run_id"]
    assert {"node_started", "node_finished"} <= {event["event"] for event in events}
    assert events[-1]["event"] == "workflow_finished"
    assert events[-1]["data"]["outputs"]["echo"] == {"text": "x", "_latency_ms": 500}
    assert text.count("event: ping\n\n") >= 2


@pytest.mark.parametrize("mode", ["completion", "chat"])
def test_streaming_message_chunks_add_up_to_the_answer(fake: FakeDify, mode: str) -> None:
    events = sse_events(post(fake, mode, {"text": "x"}, "streaming").text)
    answer = "".join(event["answer"] for event in events if event["event"] == "message")
    assert answer == json.loads(json.dumps(post(fake, mode, {"text": "x"}).json()))["answer"]
    assert events[-1]["event"] == "message_end"


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after"),
    [
        ("server_error", 500, "internal_server_error", None),
        ("rate_limit", 429, "rate_limit_error", "1"),
        ("too_many", 429, "too_many_requests", None),
        ("invalid_param", 400, "invalid_param", None),
        ("app_unavailable", 400, "app_unavailable", None),
        ("auth", 401, "unauthorized", None),
    ],
)
def test_json_error_faults_answer_with_difys_error_body(
    fake: FakeDify, fault: str, status: int, code: str, retry_after: str | None
) -> None:
    response = post(fake, "workflow", {"_fault": fault})
    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.headers.get("Retry-After") == retry_after


def test_bad_gateway_fault_answers_with_an_html_page(fake: FakeDify) -> None:
    response = post(fake, "completion", {"_fault": "bad_gateway"})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")


def test_reset_fault_drops_the_connection_without_an_answer(fake: FakeDify) -> None:
    with pytest.raises(httpx.TransportError):
        post(fake, "workflow", {"_fault": "reset"})
    assert fake.stats()["faults"] == {"reset": 1}


def test_hang_fault_never_answers_and_ends_when_the_client_leaves(fake: FakeDify) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            fake.url + "/workflows/run", json=body_for("workflow", {"_fault": "hang"}), headers=AUTH, timeout=0.3
        )
    assert fake.stats()["in_flight"] in (0, 1)  # the server notices the disconnect right away or a moment later


@pytest.mark.parametrize("response_mode", ["blocking", "streaming"])
def test_bad_json_fault_sends_something_that_is_not_json(fake: FakeDify, response_mode: str) -> None:
    text = post(fake, "workflow", {"_fault": "bad_json"}, response_mode).text
    with pytest.raises(ValueError):
        [json.loads(part.removeprefix("data: ")) for part in text.split("\n\n") if part.strip() and "ping" not in part]


def test_cut_fault_truncates_a_blocking_answer(fake: FakeDify) -> None:
    with pytest.raises(ValueError):
        post(fake, "workflow", {"_fault": "cut"}).json()


@pytest.mark.parametrize("mode", ["workflow", "completion", "chat"])
def test_cut_fault_ends_a_stream_before_its_finishing_event(fake: FakeDify, mode: str) -> None:
    events = sse_events(post(fake, mode, {"_fault": "cut"}, "streaming").text)
    assert events
    assert not {"workflow_finished", "message_end"} & {event["event"] for event in events}


@pytest.mark.parametrize(
    ("mode", "response_mode", "check"),
    [
        ("workflow", "blocking", lambda r: r.json()["data"]["status"] == "failed"),
        ("workflow", "streaming", lambda r: sse_events(r.text)[-1]["data"]["status"] == "failed"),
        ("completion", "blocking", lambda r: r.json()["code"] == "completion_request_error"),
        ("chat", "streaming", lambda r: sse_events(r.text)[-1]["event"] == "error"),
    ],
)
def test_workflow_failed_fault_reports_a_failed_run(fake: FakeDify, mode: str, response_mode: str, check: Any) -> None:
    assert check(post(fake, mode, {"_fault": "workflow_failed"}, response_mode))
    assert fake.stats()["succeeded"] == 0


@pytest.mark.parametrize(
    ("response_mode", "check"),
    [
        ("blocking", lambda r: r.json()["data"]["status"] == "paused"),
        ("streaming", lambda r: sse_events(r.text)[-1]["event"] == "workflow_paused"),
    ],
)
def test_paused_fault_reports_a_run_waiting_for_a_person(fake: FakeDify, response_mode: str, check: Any) -> None:
    assert check(post(fake, "workflow", {"_fault": "paused"}, response_mode))


def test_fault_times_makes_only_the_first_calls_with_those_inputs_fail(fake: FakeDify) -> None:
    inputs = {"text": "x", "_fault": "server_error", "_fault_times": 2}
    statuses = [post(fake, "workflow", inputs).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert post(fake, "workflow", {**inputs, "text": "other"}).status_code == 500


def test_missing_api_key_is_refused(fake: FakeDify) -> None:
    response = httpx.post(fake.url + "/workflows/run", json=body_for("workflow", {}), timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("mode", "body"),
    [
        ("workflow", {"response_mode": "blocking", "user": "u"}),
        ("workflow", {"inputs": {}, "response_mode": "blocking"}),
        ("chat", {"inputs": {}, "response_mode": "blocking", "user": "u"}),
        ("workflow", {"inputs": {"_fault": "no_such_fault"}, "user": "u"}),
    ],
)
def test_requests_dify_would_refuse_get_invalid_param(fake: FakeDify, mode: str, body: dict[str, Any]) -> None:
    response = httpx.post(fake.url + PATHS[mode], json=body, headers=AUTH, timeout=5)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_param")


def test_stats_count_calls_statuses_faults_and_modes(fake: FakeDify) -> None:
    post(fake, "workflow", {"a": 1})
    post(fake, "chat", {"a": 1})
    post(fake, "completion", {"_fault": "server_error"})
    stats = fake.stats()
    assert stats["calls"] == 3
    assert stats["succeeded"] == 2
    assert stats["status_counts"] == {"200": 2, "500": 1}
    assert stats["faults"] == {"server_error": 1}
    assert stats["by_mode"] == {"workflow": 1, "chat": 1, "completion": 1}


def test_a_repeated_successful_input_counts_as_paid_twice(fake: FakeDify) -> None:
    for inputs in ({"a": 1}, {"a": 1}, {"a": 1}, {"a": 2}, {"b": 1, "_fault": "server_error"}):
        post(fake, "workflow", inputs)
    stats = fake.stats()
    assert (stats["rows_paid_twice"], stats["duplicate_successes"]) == (1, 2)


async def _concurrent_calls(fake: FakeDify, count: int, latency_ms: int) -> list[int]:
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200)) as http:
        calls = [
            http.post(
                fake.url + "/workflows/run",
                json=body_for("workflow", {"i": i, "_latency_ms": latency_ms}),
                headers=AUTH,
            )
            for i in range(count)
        ]
        return [response.status_code for response in await asyncio.gather(*calls)]


def test_max_in_flight_counts_concurrent_calls(fake: FakeDify) -> None:
    assert asyncio.run(_concurrent_calls(fake, 20, 300)) == [200] * 20
    stats = fake.stats()
    assert (stats["max_in_flight"], stats["in_flight"], stats["succeeded"]) == (20, 0, 20)


def test_max_active_refuses_calls_beyond_the_cap_with_a_400_too_many_requests_as_dify_does(fake: FakeDify) -> None:
    fake.configure(max_active=5)
    statuses = asyncio.run(_concurrent_calls(fake, 12, 300))
    assert statuses.count(200) == 5
    assert statuses.count(400) == 7
    fake.configure(max_active=1)
    streaming = body_for("workflow", {"_latency_ms": 300}, "streaming")
    with httpx.stream("POST", fake.url + "/workflows/run", json=streaming, headers=AUTH, timeout=5):
        refused = post(fake, "workflow", {"x": 1})
    assert refused.json()["code"] == "invalid_param"
    assert refused.json()["message"].startswith("Too many requests. Please try again later.")
    assert "Retry-After" not in refused.headers
    assert fake.stats()["limited"] == {"max_active": 8}


def test_rpm_refuses_calls_beyond_the_window_with_retry_after(fake: FakeDify) -> None:
    fake.configure(rpm=3)
    responses = [post(fake, "workflow", {"i": i}) for i in range(5)]
    assert [response.status_code for response in responses] == [200, 200, 200, 429, 429]
    assert responses[3].json()["code"] == "rate_limit_error"
    assert 1 <= int(responses[3].headers["Retry-After"]) <= 60


def test_fail_rate_spreads_over_the_transient_faults(fake: FakeDify) -> None:
    fake.configure(fail_rate=1.0, seed=7)
    for i in range(40):
        with contextlib.suppress(httpx.TransportError):
            post(fake, "workflow", {"i": i})
    faults = fake.stats()["faults"]
    assert set(faults) == {"server_error", "bad_gateway", "rate_limit", "reset", "cut"}
    assert sum(faults.values()) == 40


def test_config_rejects_unknown_faults_and_rates_over_one(fake: FakeDify) -> None:
    for options in ({"faults": {"nope": 0.1}}, {"fail_rate": 0.9, "faults": {"hang": 0.5}}, {"colour": 1}):
        response = httpx.post(fake.root + "/_fake/config", json=options, timeout=5)
        assert response.status_code == 400
    assert fake.configure(latency_ms=5)["latency_ms"] == 5


def test_a_run_goes_on_after_the_client_leaves_and_can_be_fetched(fake: FakeDify) -> None:
    body = body_for("workflow", {"text": "x", "_latency_ms": 400}, "streaming")
    with httpx.stream("POST", fake.url + "/workflows/run", json=body, headers=AUTH, timeout=5) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: ping"  # as Dify opens every workflow stream
        first = next(line for line in lines if line.startswith("data: "))
    run_id = json.loads(first.removeprefix("data: "))["workflow_run_id"]
    running = httpx.get(f"{fake.url}/workflows/run/{run_id}", headers=AUTH).json()
    assert running["status"] == "running"
    assert json.loads(running["inputs"]) == {"text": "x", "_latency_ms": 400}
    asyncio.run(asyncio.sleep(0.6))
    finished = httpx.get(f"{fake.url}/workflows/run/{run_id}", headers=AUTH).json()
    assert finished["status"] == "succeeded"
    assert finished["outputs"]["echo"] == {"text": "x", "_latency_ms": 400}
    assert fake.stats()["succeeded"] == 1


def test_an_unknown_run_is_not_found(fake: FakeDify) -> None:
    response = httpx.get(f"{fake.url}/workflows/run/nope", headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


async def _stop_while_streaming(fake: FakeDify) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    body = body_for("workflow", {"_latency_ms": 5000}, "streaming")
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("POST", fake.url + "/workflows/run", json=body, headers=AUTH) as response:
            lines = response.aiter_lines()
            assert await anext(lines) == "event: ping"
            await anext(lines)
            started = json.loads((await anext(lines)).removeprefix("data: "))
            stop = await http.post(
                f"{fake.url}/workflows/tasks/{started['task_id']}/stop", json={"user": "u"}, headers=AUTH
            )
            assert stop.json() == {"result": "success"}
            rest = "\n".join([line async for line in lines])
        record = (await http.get(f"{fake.url}/workflows/run/{started['workflow_run_id']}", headers=AUTH)).json()
    return sse_events(rest), record


def test_stop_ends_a_running_workflow_as_stopped(fake: FakeDify) -> None:
    events, record = asyncio.run(_stop_while_streaming(fake))
    assert events[-1]["event"] == "workflow_finished"
    assert events[-1]["data"]["status"] == "stopped"
    assert (record["status"], record["finished_at"]) == ("running", None)  # as Dify 1.13 says it (dify-real 22)
    assert fake.stats()["stopped"] == 1


def test_reset_forgets_runs_and_zeroes_stats(fake: FakeDify) -> None:
    run_id = post(fake, "workflow", {"a": 1}).json()["workflow_run_id"]
    fake.reset()
    assert fake.stats()["calls"] == 0
    assert httpx.get(f"{fake.url}/workflows/run/{run_id}", headers=AUTH).status_code == 404


def test_parameters_default_to_an_empty_form(fake: FakeDify) -> None:
    assert httpx.get(fake.url + "/parameters", headers=AUTH).json()["user_input_form"] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("server_error=0.05, reset=0.02", {"server_error": 0.05, "reset": 0.02}),
        ("hang=1", {"hang": 1.0}),
    ],
)
def test_parse_faults_reads_type_rate_pairs(text: str, expected: dict[str, float]) -> None:
    assert parse_faults(text) == expected


@pytest.mark.parametrize("text", ["bogus=0.1", "server_error", "reset=2"])
def test_parse_faults_rejects_unknown_types_and_bad_rates(text: str) -> None:
    with pytest.raises(ValueError):
        parse_faults(text)


def test_parse_variables_builds_text_input_items() -> None:
    assert parse_variables("text:Text:required,lang:Language") == [
        {"text-input": {"label": "Text", "variable": "text", "required": True, "max_length": 256, "default": ""}},
        {"text-input": {"label": "Language", "variable": "lang", "required": False, "max_length": 256, "default": ""}},
    ]


def test_fail_rate_is_spread_evenly_over_five_transient_faults() -> None:
    table = FakeOptions(fail_rate=0.5).fault_table()
    assert [name for name, _ in table] == ["server_error", "bad_gateway", "rate_limit", "reset", "cut"]
    assert table[-1][1] == pytest.approx(0.5)


def test_command_rejects_an_unknown_fault_type() -> None:
    with pytest.raises(CommandError, match="bad fault"):
        call_command("fake_dify", "--faults", "bogus=0.1")


def test_sigterm_prints_the_final_stats_and_exits_cleanly() -> None:
    with running_fake_dify("--variables", "text:Text:required") as fake:
        assert post(fake, "workflow", {"text": "x"}).status_code == 200
        assert post(fake, "workflow", {}).json()["message"] == "text is required in input form"
    assert fake.process.returncode == 0
    assert fake.final_stats is not None
    assert (fake.final_stats["calls"], fake.final_stats["succeeded"]) == (2, 1)


def test_command_refuses_a_port_in_use(server: FakeDify) -> None:
    with pytest.raises(CommandError, match="cannot listen"):
        call_command("fake_dify", "--port", str(server.port))
