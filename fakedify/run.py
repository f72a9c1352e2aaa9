"""One run (a workflow run or a completion/chat message) and how it shows itself in answers.

A run is finished by a server-side timer whatever happens to the HTTP response (fakedify/state.py), as in Dify: a
client that goes away does not stop it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

WORKFLOW_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "fake-dify-workflow"))


def row_key(inputs: dict[str, Any], query: str) -> str:
    """What makes two calls "the same row" for the paid-twice count and `_fault_times`."""
    key = json.dumps(inputs, sort_keys=True, ensure_ascii=False)
    return key + "\x00" + query if query else key


class Run:
    __slots__ = (
        "id", "task_id", "message_id", "conversation_id", "mode", "inputs", "query", "key", "fault", "status",
        "error", "created_at", "started", "finished_at", "elapsed", "timer", "done", "epoch",
    )  # fmt: skip

    def __init__(self, mode: str, inputs: dict[str, Any], query: str, fault: str | None, epoch: int) -> None:
        self.id, self.task_id = str(uuid.uuid4()), str(uuid.uuid4())
        self.message_id = self.id if mode != "workflow" else ""
        self.conversation_id = str(uuid.uuid4()) if mode == "chat" else ""
        self.mode, self.inputs, self.query, self.key, self.fault = mode, inputs, query, row_key(inputs, query), fault
        self.status, self.error = "running", ""
        self.created_at, self.started = int(time.time()), time.monotonic()
        self.finished_at: int | None = None
        self.elapsed = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.done = asyncio.Event()
        self.epoch = epoch  # runs started before a /_fake/reset do not count in the new stats

    def finish(self, status: str, error: str) -> bool:
        """End a running run; False if it had already ended."""
        if self.status != "running":
            return False
        self.status, self.error = status, error
        self.finished_at, self.elapsed = int(time.time()), time.monotonic() - self.started
        if self.timer is not None:
            self.timer.cancel()
        self.done.set()
        return True

    @property
    def text(self) -> str:
        echoed = {**self.inputs, "query": self.query} if self.mode == "chat" else self.inputs
        return "echo: " + json.dumps(echoed, sort_keys=True, ensure_ascii=False)

    @property
    def tokens(self) -> int:
        return 10 + len(self.text) // 4

    def outputs(self) -> dict[str, Any] | None:
        if self.status != "succeeded":
            return None
        return {"echo": self.inputs, "text": self.text} if self.mode == "workflow" else {"answer": self.text}

    def data(self) -> dict[str, Any]:
        """The run as GET /workflows/run/{id} and the blocking/finished `data` show it."""
        return {
            "id": self.id,
            "workflow_id": WORKFLOW_ID,
            "status": self.status,
            "outputs": self.outputs(),
            "error": self.error or None,
            "elapsed_time": round(self.elapsed, 4),
            "total_tokens": self.tokens if self.status == "succeeded" else 0,
            "total_steps": 3,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }

    def message_body(self, event: str, answer: str | None = None) -> dict[str, Any]:
        """A completion/chat event: `message` (with an answer chunk), `message_end` or the blocking body."""
        body: dict[str, Any] = {"event": event, "task_id": self.task_id, "id": self.message_id}
        body["message_id"] = self.message_id
        if self.conversation_id:
            body["conversation_id"] = self.conversation_id
        if answer is not None:
            body.update(answer=answer, created_at=self.created_at)
        return body

    def usage(self) -> dict[str, Any]:
        usage = {"prompt_tokens": 10, "completion_tokens": self.tokens - 10, "total_tokens": self.tokens}
        # As real Dify: a decimal string, priced here at 0.000002 a token.
        price = {"total_price": f"{self.tokens * 0.000002:.7f}", "currency": "USD"}
        return {"usage": {**usage, **price, "latency": round(self.elapsed, 4)}}
