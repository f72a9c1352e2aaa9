"""Calls to the fake over real HTTP, as a Dify client makes them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from fakedify.harness import FakeDifyProcess

AUTH = {"Authorization": "Bearer app-test"}
PATHS = {"workflow": "/workflows/run", "completion": "/completion-messages", "chat": "/chat-messages"}


def body_for(mode: str, inputs: dict[str, Any], response_mode: str = "blocking") -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": inputs, "response_mode": response_mode, "user": "tester"}
    if mode == "chat":
        body["query"] = "hello"
    return body


def post(fake: FakeDifyProcess, mode: str, inputs: dict[str, Any], response_mode: str = "blocking") -> httpx.Response:
    return httpx.post(fake.url + PATHS[mode], json=body_for(mode, inputs, response_mode), headers=AUTH, timeout=10)


def sse_events(text: str) -> list[dict[str, Any]]:
    frames = [frame for frame in text.split("\n\n") if frame.startswith("data: ")]
    return [json.loads(frame[len("data: ") :]) for frame in frames]


async def _concurrent(fake: FakeDifyProcess, count: int, latency_ms: int) -> list[int]:
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


def concurrent_calls(fake: FakeDifyProcess, count: int, latency_ms: int) -> list[int]:
    """`count` blocking workflow calls at once; their HTTP statuses."""
    return asyncio.run(_concurrent(fake, count, latency_ms))
