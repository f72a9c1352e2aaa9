"""The fake's own endpoints, for tests and benchmarks (no key needed): GET /_fake/stats, GET /_fake/calls (each
run call's start and end), POST /_fake/reset, GET and POST /_fake/config (options changed live, all or nothing),
POST /_fake/files/expire and /_fake/files/fail (files.py)."""

from __future__ import annotations

from aiohttp import web

from fakedify import checks, wire
from fakedify.state import FAKE


async def get_stats(request: web.Request) -> web.Response:
    return wire.blocking(200, request.app[FAKE].stats_dict())


async def get_calls(request: web.Request) -> web.Response:
    """Every run call's start and end (seconds on this process's monotonic clock)."""
    return wire.blocking(200, {"calls": request.app[FAKE].call_log.as_list()})


async def reset(request: web.Request) -> web.Response:
    request.app[FAKE].reset()
    return wire.blocking(200, {"result": "success"})


async def get_config(request: web.Request) -> web.Response:
    return wire.blocking(200, request.app[FAKE].options.as_dict())


async def configure(request: web.Request) -> web.Response:
    body = await checks.read_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        request.app[FAKE].configure(body)
    except (TypeError, ValueError) as exc:
        return wire.error(400, "invalid_param", str(exc))
    return wire.blocking(200, request.app[FAKE].options.as_dict())


async def expire_uploads(request: web.Request) -> web.Response:
    return await request.app[FAKE].files.expire(request)


async def fail_uploads(request: web.Request) -> web.Response:
    return await request.app[FAKE].files.fail(request)
