"""Run calls answered blocking: outputs that echo the inputs (fakedify/calls.py)."""

from __future__ import annotations

import pytest

from fakedify.harness import FakeDifyProcess
from tests.fakedify.helpers import post


def test_blocking_workflow_run_echoes_its_inputs(fake: FakeDifyProcess) -> None:
    inputs = {"text": "héllo", "n": 3}
    data = post(fake, "workflow", inputs).json()["data"]
    assert data["status"] == "succeeded"
    assert data["outputs"] == {"echo": inputs, "text": 'echo: {"n": 3, "text": "héllo"}'}
    assert data["total_tokens"] == 10 + len(data["outputs"]["text"]) // 4


@pytest.mark.parametrize(
    ("mode", "expected_answer"),
    [("completion", 'echo: {"text": "x"}'), ("chat", 'echo: {"query": "hello", "text": "x"}')],
)
def test_blocking_message_answer_echoes_inputs_and_query(
    fake: FakeDifyProcess, mode: str, expected_answer: str
) -> None:
    body = post(fake, mode, {"text": "x"}).json()
    assert body["answer"] == expected_answer
    assert body["metadata"]["usage"]["total_tokens"] == 10 + len(expected_answer) // 4
    assert ("conversation_id" in body) == (mode == "chat")
