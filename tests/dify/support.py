"""Helpers shared by the client's tests (fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

from batches.dify.client import DifyClient
from batches.dify.types import AppSettings, CallResult
from fakedify.harness import FakeDifyProcess

T = TypeVar("T")
TRANSPORTS = ["aiohttp", "httpx"]
MODES = [
    (mode, response_mode) for mode in ("workflow", "completion", "chat") for response_mode in ("streaming", "blocking")
]
API_KEY = "app-very-secret-key"


def app_for(
    fake: FakeDifyProcess | str, mode: str = "workflow", response_mode: str = "streaming", timeout: float = 10
) -> AppSettings:
    url = fake if isinstance(fake, str) else fake.url
    return AppSettings(mode=mode, base_url=url, api_key=API_KEY, response_mode=response_mode, timeout=timeout)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def call(app: AppSettings, inputs: dict[str, Any], transport: str = "aiohttp", **options: Any) -> CallResult:
    async with DifyClient(transport, **options) as client:
        return await client.run(app, inputs, user="tester")


def expected_outputs(mode: str, inputs: dict[str, Any]) -> dict[str, Any]:
    text = "echo: " + json.dumps(inputs, sort_keys=True, ensure_ascii=False)
    return {"echo": inputs, "text": text} if mode == "workflow" else {"answer": text}
