"""A run's details, stop and the app's parameters (fakedify/endpoints.py); runs outlive their HTTP answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from fakedify.harness import FakeDifyProcess
from tests.fakedify.helpers import AUTH, body_for, sse_events


def test_a_run_goes_on_after_the_client_leaves_and_can_be_fetched(fake: FakeDifyProcess) -> None:
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


def test_an_unknown_run_is_not_found(fake: FakeDifyProcess) -> None:
    response = httpx.get(f"{fake.url}/workflows/run/nope", headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


async def _stop_while_streaming(fake: FakeDifyProcess) -> tuple[list[dict[str, Any]], dict[str, Any]]:
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


def test_stop_ends_a_running_workflow_as_stopped(fake: FakeDifyProcess) -> None:
    events, record = asyncio.run(_stop_while_streaming(fake))
    assert events[-1]["event"] == "workflow_finished"
    assert events[-1]["data"]["status"] == "stopped"
    assert (record["status"], record["finished_at"]) == ("running", None)  # as Dify 1.13 says it (dify-real 22)
    assert fake.stats()["stopped"] == 1


def test_parameters_default_to_an_empty_form(fake: FakeDifyProcess) -> None:
    assert httpx.get(fake.url + "/parameters", headers=AUTH).json()["user_input_form"] == []


def test_a_rows_fault_answers_its_runs_only_and_the_servers_faults_answer_parameters_too(fake: FakeDifyProcess) -> None:
    row = body_for("workflow", {"text": "x", "_fault": "server_error"}, "blocking")
    body = body_for("workflow", {"text": "x"}, "blocking")
    rows_own = [
        httpx.post(fake.url + "/workflows/run", json=row, headers=AUTH).status_code,
        httpx.get(fake.url + "/parameters", headers=AUTH).status_code,
    ]
    fake.configure(faults={"bad_gateway": 1.0})
    gateway = [
        httpx.post(fake.url + "/workflows/run", json=body, headers=AUTH).status_code,
        httpx.get(fake.url + "/parameters", headers=AUTH).status_code,
    ]
    fake.configure(faults={"workflow_failed": 1.0})
    runs_fail = httpx.get(fake.url + "/parameters", headers=AUTH).status_code

    assert (rows_own, gateway, runs_fail) == ([500, 200], [502, 502], 200)
    assert fake.stats()["parameters_calls"] == 3


def test_a_whole_outage_answers_every_endpoint(fake: FakeDifyProcess) -> None:
    fake.configure(outage="bad_gateway")

    down = httpx.get(fake.url + "/parameters", headers=AUTH)
    run = httpx.post(fake.url + "/workflows/run", json=body_for("workflow", {"text": "x"}, "blocking"), headers=AUTH)

    assert (down.status_code, run.status_code) == (502, 502)
    assert "text/html" in down.headers["content-type"]
    assert (fake.stats()["parameters_calls"], fake.stats()["calls"]) == (1, 1)
