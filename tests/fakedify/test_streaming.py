"""Run calls answered as Server-Sent Events, as Dify streams them (fakedify/streaming.py)."""

from __future__ import annotations

import json

import pytest

from fakedify.harness import FakeDifyProcess
from tests.fakedify.helpers import post, sse_events


def test_streaming_workflow_starts_with_workflow_started_and_ends_with_workflow_finished(
    fake: FakeDifyProcess,
) -> None:
    text = post(fake, "workflow", {"text": "x", "_latency_ms": 500}, "streaming").text
    events = sse_events(text)
    assert events[0]["event"] == "workflow_started"
    assert events[0]["workflow_run_id"] == events[-1]["workflow_run_id"]
    assert {"node_started", "node_finished"} <= {event["event"] for event in events}
    assert events[-1]["event"] == "workflow_finished"
    assert events[-1]["data"]["outputs"]["echo"] == {"text": "x", "_latency_ms": 500}
    assert text.count("event: ping\n\n") >= 2


@pytest.mark.parametrize("mode", ["completion", "chat"])
def test_streaming_message_chunks_add_up_to_the_answer(fake: FakeDifyProcess, mode: str) -> None:
    events = sse_events(post(fake, mode, {"text": "x"}, "streaming").text)
    answer = "".join(event["answer"] for event in events if event["event"] == "message")
    assert answer == json.loads(json.dumps(post(fake, mode, {"text": "x"}).json()))["answer"]
    assert events[-1]["event"] == "message_end"
