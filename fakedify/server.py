"""The fake Dify's routes, and serving them until SIGTERM/SIGINT (`manage.py fake_dify`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from fakedify import calls, control, endpoints
from fakedify.faults import immediate_fault
from fakedify.options import FakeOptions
from fakedify.state import FAKE, FakeDify

logger = logging.getLogger("fakedify")


RUN_PATHS = frozenset({"/v1/workflows/run", "/v1/completion-messages", "/v1/chat-messages"})


@web.middleware
async def whole_outage(request: web.Request, handler: Handler) -> web.StreamResponse:
    """While `outage` is set, every /v1 endpoint but the run calls (fakedify/calls.py) answers it too; GET
    /parameters also draws the server's faults from the rates (fakedify/faults.py)."""
    fake = request.app[FAKE]
    if request.path == "/v1/parameters":
        fake.stats.parameters_calls += 1
    if fake.options.outage and request.path.startswith("/v1/") and request.path not in RUN_PATHS:
        return await immediate_fault(request, fake.options.outage)
    fault = fake.faults.server_fault() if request.path == "/v1/parameters" else None
    return await (immediate_fault(request, fault) if fault else handler(request))


def make_app(fake: FakeDify) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[whole_outage])
    app[FAKE] = fake
    app.router.add_post("/v1/workflows/run", calls.workflow_run)
    app.router.add_post("/v1/completion-messages", calls.completion_message)
    app.router.add_post("/v1/chat-messages", calls.chat_message)
    app.router.add_get("/v1/workflows/run/{run_id}", endpoints.get_run)
    app.router.add_post("/v1/workflows/tasks/{task_id}/stop", endpoints.stop)
    app.router.add_post("/v1/completion-messages/{task_id}/stop", endpoints.stop)
    app.router.add_post("/v1/chat-messages/{task_id}/stop", endpoints.stop)
    app.router.add_get("/v1/parameters", endpoints.parameters)
    app.router.add_post("/v1/files/upload", endpoints.upload)
    app.router.add_post("/_fake/files/expire", control.expire_uploads)
    app.router.add_post("/_fake/files/fail", control.fail_uploads)
    app.router.add_get("/_fake/stats", control.get_stats)
    app.router.add_get("/_fake/calls", control.get_calls)
    app.router.add_post("/_fake/reset", control.reset)
    app.router.add_get("/_fake/config", control.get_config)
    app.router.add_post("/_fake/config", control.configure)
    return app


async def serve(options: FakeOptions, host: str, port: int, announce: Callable[[str], None]) -> dict[str, Any]:
    """Serve until SIGTERM/SIGINT; return the final stats."""
    fake = FakeDify(options)
    runner = web.AppRunner(make_app(fake), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    actual_port = runner.addresses[0][1]
    logger.info("fake_dify on %s:%s with %s", host, actual_port, options.as_dict())
    announce(f"http://{host}:{actual_port}/v1")
    await _until_stop_signal()
    stats = fake.stats_dict()
    await runner.cleanup()
    return stats


async def _until_stop_signal() -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
