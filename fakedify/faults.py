"""Injected faults: which call gets one (a row's `_fault` directive, else one random draw against the rates), and
the faults that answer, or refuse to, before any run starts. Faults during a run are in fakedify/calls.py and
fakedify/streaming.py; an injected fault never produces a successful run."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from typing import Any

from aiohttp import web

from fakedify import wire
from fakedify.options import FakeOptions

RUN_FAULTS = frozenset({"cut", "bad_json", "workflow_failed", "paused"})  # faults that happen during a run
# Faults of the server rather than of a run: drawn from the rates, they answer GET /parameters too (a proxy's 502
# or a hung or broken API answers every request). A row's `_fault` directive concerns its run calls only.
SERVER_FAULTS = frozenset({"server_error", "bad_gateway", "reset", "hang"})
FAULT_STATUS = {"cut": "failed", "bad_json": "failed", "workflow_failed": "failed", "paused": "paused"}
JSON_FAULTS: dict[str, tuple[int, str, str]] = {
    "server_error": (500, "internal_server_error", "The server encountered an internal error."),
    "rate_limit": (429, "rate_limit_error", "Rate Limit Error"),
    "too_many": (429, "too_many_requests", "Too many requests. Please try again later."),
    "invalid_param": (400, "invalid_param", "inputs are invalid (fake fault)"),
    "app_unavailable": (400, "app_unavailable", "App unavailable, please check your app configurations."),
    "auth": (401, "unauthorized", "Access token is invalid"),
}
BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class FaultPicker:
    def __init__(self, options: FakeOptions) -> None:
        self.table = options.fault_table()
        self.rng = random.Random(options.seed)
        self.server_rng = random.Random(options.seed)  # GET /parameters' draws leave the runs' sequence alone
        self.directive_calls: dict[str, int] = {}  # row key: calls so far with a `_fault_times` directive

    def configure(self, options: FakeOptions, reseed: bool) -> None:
        self.table = options.fault_table()
        if reseed:
            self.rng.seed(options.seed)
            self.server_rng.seed(options.seed)

    def pick(self, inputs: dict[str, Any], key: str) -> str | None:
        """The fault for this call, or None."""
        directive = inputs.get("_fault")
        if directive:
            times = inputs.get("_fault_times")
            if times in (None, ""):
                return str(directive)
            calls = self.directive_calls[key] = self.directive_calls.get(key, 0) + 1
            return str(directive) if calls <= int(str(times)) else None
        return self._draw() if self.table else None

    def server_fault(self) -> str | None:
        """The fault for a call that is not a run (GET /parameters): one draw against the rates, if it is the
        server's."""
        fault = self._draw(self.server_rng) if self.table else None
        return fault if fault in SERVER_FAULTS else None

    def _draw(self, rng: random.Random | None = None) -> str | None:
        draw = (rng or self.rng).random()
        return next((name for name, cumulative in self.table if draw < cumulative), None)


async def immediate_fault(request: web.Request, fault: str) -> web.StreamResponse:
    """The faults that answer (or refuse to) before any run starts."""
    if fault in JSON_FAULTS:
        status, code, message = JSON_FAULTS[fault]
        return wire.error(status, code, message, {"Retry-After": "1"} if fault == "rate_limit" else None)
    if fault == "bad_gateway":
        return web.Response(status=502, text=BAD_GATEWAY_PAGE, content_type="text/html")
    if fault == "reset":
        _reset_connection(request)
    await asyncio.sleep(3600 if fault == "reset" else 86400)  # cancelled when the connection goes away
    return wire.error(504, "gateway_timeout", "gave up waiting")


def _reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP RST, no answer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
