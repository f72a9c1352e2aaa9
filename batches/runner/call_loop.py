"""The runner's network side: an asyncio loop in its own thread, with the one Dify client created inside it.

The runner's thread starts calls on it and reads their results from a queue (batches/runner/worker.py); no database
access happens here.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future, wait
from typing import Any

from batches.conf import settings
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings
from batches.services.leases import Claim

SETTLE_STEPS = 8  # loop iterations a new call takes to send its request (pooled connection, headers, body)


class CallLoop:
    """An event loop in its own thread, with the HTTP client created inside it (workers are forked)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="batches-calls", daemon=True)
        self.thread.start()
        self.client: DifyClient = self.submit(self._make_client()).result()
        self.calls: dict[int, tuple[Claim, AppSettings, Future[Any]]] = {}
        self.errands: list[Future[Any]] = []

    async def _make_client(self) -> DifyClient:
        return DifyClient(
            transport=settings.BATCHES_HTTP_TRANSPORT, max_response_bytes=settings.BATCHES_MAX_RESPONSE_BYTES
        )

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start(self, claim: Claim, app: AppSettings, coro: Coroutine[Any, Any, Any]) -> None:
        self.calls[claim.execution_id] = (claim, app, self.submit(coro))

    def settle(self, timeout: float = 0.05) -> None:
        """Wait (briefly) until the loop has run the calls just started up to their first wait for the network.

        Their requests are then on their way. Without this, the results written next hold the GIL while the
        loop thread sends them: it gets the GIL back once per switch interval for each step, and a wave's
        successors reached the upstream up to 0.2 s after their claim.
        """
        with contextlib.suppress(TimeoutError):
            self.submit(_after_ready_steps(SETTLE_STEPS)).result(timeout=timeout)

    def forget(self, execution_id: int) -> None:
        self.calls.pop(execution_id, None)

    def abandon(self, execution_ids: list[int]) -> list[tuple[Claim, AppSettings]]:
        """Cancel these calls locally; their rows are no longer ours, so their results would be discarded."""
        abandoned = []
        for execution_id in execution_ids:
            if execution_id in self.calls:
                claim, app, call = self.calls[execution_id]
                call.cancel()
                abandoned.append((claim, app))
        return abandoned

    def cancel_all(self) -> set[int]:
        """Cancel every call; returns the rows whose calls were still running (the others' results are queued)."""
        return {execution_id for execution_id, (_, _, call) in self.calls.items() if call.cancel()}

    def send(self, coro: Coroutine[Any, Any, Any]) -> None:
        """A call that is not a row's (stopping a run upstream): waited for, briefly, before closing."""
        self.errands.append(self.submit(coro))

    def close(self) -> None:
        self.cancel_all()
        wait(self.errands, timeout=5)
        self.submit(self.client.aclose()).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def _after_ready_steps(steps: int) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)
