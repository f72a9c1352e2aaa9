"""The calls a person waits for (a page, a command): an app's input variables, "Test connection", and a probe of
a silent upstream. Each is one short call through the one client (`DifyClient`), on an event loop of its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from batches.choices import ANSWERED_ERRORS, ErrorType
from batches.dify.answers import parse_input_form
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings, CallResult, InputVariable

logger = logging.getLogger(__name__)
T = TypeVar("T")
UNREACHABLE = {
    ErrorType.TIMEOUT: "timeout: the upstream did not answer in time",
    ErrorType.CONNECTION: "connection: the upstream could not be reached",
}
NOT_DIFY = "not a Dify answer"  # how dify/errors.py describes an error body that is not Dify's JSON


@dataclass
class ConnectionReport:
    ok: bool
    error: str = ""  # one line: the error type and what the upstream said
    variables: list[InputVariable] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)  # name, mode, description from /info when answered


def fetch_parameters(app: AppSettings, timeout: float = 5) -> list[InputVariable] | None:
    """The app's input variables, or None when they cannot be read (an import then goes on without the check)."""
    result = _call(_short(app, timeout), lambda client, app: client.get_object(app, "/parameters"))
    if not result.ok:
        logger.info("GET /parameters failed: %s %s", result.error_type, result.error)
        return None
    form = (result.outputs or {}).get("user_input_form")
    return parse_input_form(form) if isinstance(form, list) else None


def check_connection(app: AppSettings, timeout: float = 10) -> ConnectionReport:
    """GET /parameters and /info, reporting what went wrong in one line: a person is setting the app up."""
    app = _short(app, timeout)
    parameters, info = _call(app, _parameters_and_info)
    if not parameters.ok:
        return ConnectionReport(False, f"{parameters.error_type}: {parameters.error}")
    form = (parameters.outputs or {}).get("user_input_form")
    variables = parse_input_form(form) if isinstance(form, list) else []
    return ConnectionReport(True, variables=variables, info=_described(info))


@dataclass(frozen=True)
class Health:
    """What the upstream circuit's health check heard: `up` when Dify itself answered."""

    up: bool
    answer: str  # one line, shown where the circuit is shown


def check_health(app: AppSettings, timeout: float = 10) -> Health:
    """The health check a person waits for (`probe_upstream`, the batch page's button)."""
    return _call(app, lambda client, app: health(client, app, timeout))


async def health(client: DifyClient, app: AppSettings, timeout: float) -> Health:
    """`GET /parameters` with the app's key: it costs no tokens and concerns no row.

    Up: a 2xx with Dify's JSON, or Dify's own JSON error about the key or the app (it answers; a run would fail for
    a reason of its own). Down: no answer, a timeout, a 5xx, or a page that is not Dify's (a proxy's HTML)."""
    result = await client.get_object(_short(app, min(timeout, app.timeout)), "/parameters")
    if result.ok:
        return Health(True, f"HTTP {result.http_status or 200}: Dify answers")
    status = result.http_status
    if status is not None and status < 500 and result.error_type in ANSWERED_ERRORS and NOT_DIFY not in result.error:
        return Health(True, f"HTTP {status} {result.error_type}: Dify answers")
    if status is not None and status >= 500:
        return Health(False, f"HTTP {status} {ErrorType.UPSTREAM_ERROR}")
    if status is not None:  # a page or a body that is not Dify's, whatever its status
        return Health(False, f"HTTP {status}: {NOT_DIFY}")
    return Health(False, UNREACHABLE.get(ErrorType(result.error_type), f"{result.error_type}: {result.error}")[:300])


async def _parameters_and_info(client: DifyClient, app: AppSettings) -> tuple[CallResult, CallResult]:
    parameters = await client.get_object(app, "/parameters")
    info = await client.get_object(app, "/info") if parameters.ok else CallResult(ok=False)
    return parameters, info


def _described(info: CallResult) -> dict[str, str]:
    """The app's name, mode and description; {} where the app has no /info (older Dify answers 404)."""
    data: dict[str, Any] = (info.outputs or {}) if info.ok else {}
    return {name: str(data[name]) for name in ("name", "mode", "description") if data.get(name)}


def _short(app: AppSettings, timeout: float) -> AppSettings:
    return replace(app, timeout=timeout, response_mode="blocking")


def _call(app: AppSettings, call: Callable[[DifyClient, AppSettings], Awaitable[T]]) -> T:
    async def run() -> T:
        async with DifyClient(transport="httpx", max_connections=2) as client:
            return await call(client, app)

    return asyncio.run(run())
