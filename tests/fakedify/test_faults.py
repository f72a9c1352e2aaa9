"""Injected faults, by a row's `_fault` directive or by rate (fakedify/faults.py and the run faults)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import pytest

from fakedify.harness import FakeDifyProcess
from fakedify.options import FakeOptions
from tests.fakedify.helpers import AUTH, body_for, post, sse_events


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
    fake: FakeDifyProcess, fault: str, status: int, code: str, retry_after: str | None
) -> None:
    response = post(fake, "workflow", {"_fault": fault})
    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.headers.get("Retry-After") == retry_after


def test_bad_gateway_fault_answers_with_an_html_page(fake: FakeDifyProcess) -> None:
    response = post(fake, "completion", {"_fault": "bad_gateway"})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")


def test_reset_fault_drops_the_connection_without_an_answer(fake: FakeDifyProcess) -> None:
    with pytest.raises(httpx.TransportError):
        post(fake, "workflow", {"_fault": "reset"})
    assert fake.stats()["faults"] == {"reset": 1}


def test_hang_fault_never_answers_and_ends_when_the_client_leaves(fake: FakeDifyProcess) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            fake.url + "/workflows/run", json=body_for("workflow", {"_fault": "hang"}), headers=AUTH, timeout=0.3
        )
    assert fake.stats()["in_flight"] in (0, 1)  # the server notices the disconnect right away or a moment later


@pytest.mark.parametrize("response_mode", ["blocking", "streaming"])
def test_bad_json_fault_sends_something_that_is_not_json(fake: FakeDifyProcess, response_mode: str) -> None:
    text = post(fake, "workflow", {"_fault": "bad_json"}, response_mode).text
    with pytest.raises(ValueError):
        [json.loads(part.removeprefix("data: ")) for part in text.split("\n\n") if part.strip() and "ping" not in part]


def test_cut_fault_truncates_a_blocking_answer(fake: FakeDifyProcess) -> None:
    with pytest.raises(ValueError):
        post(fake, "workflow", {"_fault": "cut"}).json()


@pytest.mark.parametrize("mode", ["workflow", "completion", "chat"])
def test_cut_fault_ends_a_stream_before_its_finishing_event(fake: FakeDifyProcess, mode: str) -> None:
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
def test_workflow_failed_fault_reports_a_failed_run(
    fake: FakeDifyProcess, mode: str, response_mode: str, check: Any
) -> None:
    assert check(post(fake, mode, {"_fault": "workflow_failed"}, response_mode))
    assert fake.stats()["succeeded"] == 0


@pytest.mark.parametrize(
    ("response_mode", "check"),
    [
        ("blocking", lambda r: r.json()["data"]["status"] == "paused"),
        ("streaming", lambda r: sse_events(r.text)[-1]["event"] == "workflow_paused"),
    ],
)
def test_paused_fault_reports_a_run_waiting_for_a_person(fake: FakeDifyProcess, response_mode: str, check: Any) -> None:
    assert check(post(fake, "workflow", {"_fault": "paused"}, response_mode))


def test_fault_times_makes_only_the_first_calls_with_those_inputs_fail(fake: FakeDifyProcess) -> None:
    inputs = {"text": "x", "_fault": "server_error", "_fault_times": 2}
    statuses = [post(fake, "workflow", inputs).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert post(fake, "workflow", {**inputs, "text": "other"}).status_code == 500


def test_fail_rate_spreads_over_the_transient_faults(fake: FakeDifyProcess) -> None:
    fake.configure(fail_rate=1.0, seed=7)
    for i in range(40):
        with contextlib.suppress(httpx.TransportError):
            post(fake, "workflow", {"i": i})
    faults = fake.stats()["faults"]
    assert set(faults) == {"server_error", "bad_gateway", "rate_limit", "reset", "cut"}
    assert sum(faults.values()) == 40


def test_fail_rate_is_spread_evenly_over_five_transient_faults() -> None:
    table = FakeOptions(fail_rate=0.5).fault_table()
    assert [name for name, _ in table] == ["server_error", "bad_gateway", "rate_limit", "reset", "cut"]
    assert table[-1][1] == pytest.approx(0.5)
