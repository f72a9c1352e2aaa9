""" "Test connection" for a workflow: GET /parameters (and /info where the app has it), with the exact error.

Unlike `dify.fetch_parameters`, which answers None so an import can go on without the check, this reports what
went wrong in one line (the API key masked), because a person is setting the app up and needs to fix it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from batches import dify, upstream_hosts
from batches.models import Workflow
from batches.upstream_hosts import UpstreamRefused

logger = logging.getLogger(__name__)
TIMEOUT = 10.0
MAX_BYTES = dify.MAX_PARAMETERS_BYTES


@dataclass
class ConnectionReport:
    ok: bool
    error: str = ""  # one line: the error type and what the upstream said
    variables: list[dify.InputVariable] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)  # name, mode, description from /info when answered


class _Refused(Exception):
    """The upstream answered, but not with what was asked for (the message is the report's error)."""


def check_connection(workflow: Workflow) -> ConnectionReport:
    key = workflow.api_key if isinstance(workflow.api_key, str) else ""
    if not key or dify.is_unreadable(workflow.api_key):
        return ConnectionReport(False, "auth: the stored API key cannot be read; enter it again")
    base = workflow.base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {key}"}
    try:
        upstream_hosts.check_url(base)
    except (UpstreamRefused, ConnectionError) as exc:
        return ConnectionReport(False, f"app_error: {exc}")
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as http:
            form = _get_json(http, base + "/parameters", headers, key).get("user_input_form")
            info = _info(http, base + "/info", headers, key)
    except httpx.HTTPError as exc:
        error = f"{dify.classify_exception(exc)}: {dify.one_line(_describe(exc), key)}"
        logger.info("test connection of workflow %s failed: %s", workflow.pk, error)
        return ConnectionReport(False, error)
    except _Refused as exc:
        logger.info("test connection of workflow %s failed: %s", workflow.pk, exc)
        return ConnectionReport(False, str(exc))
    variables = dify.parse_input_form(form) if isinstance(form, list) else []
    return ConnectionReport(True, variables=variables, info=info)


def _info(http: httpx.Client, url: str, headers: dict[str, str], key: str) -> dict[str, str]:
    """The app's name, mode and description; {} where the app has no /info (older Dify answers 404)."""
    try:
        data = _get_json(http, url, headers, key)
    except _Refused:
        return {}
    return {name: str(data[name]) for name in ("name", "mode", "description") if data.get(name)}


def _get_json(http: httpx.Client, url: str, headers: dict[str, str], key: str) -> dict[str, Any]:
    with http.stream("GET", url, headers=headers) as response:
        body = _read_capped(response)
        if response.status_code != 200:
            error_type, text = dify.classify_http_error(
                response.status_code, body, response.headers.get("content-type", "")
            )
            raise _Refused(f"{error_type}: {dify.one_line(text, key)}")
    data = dify._json_value(body) if body else None
    if not isinstance(data, dict):
        raise _Refused(f"bad_response: {url.rsplit('/', 1)[-1]} did not answer a JSON object")
    return data


def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_BYTES:
            raise _Refused("bad_response: the answer is over 1 MB")
    return bytes(body)


def _describe(exc: BaseException) -> str:
    """`Type: message` of the most telling exception in the chain (httpx wraps the socket-level one)."""
    current: BaseException | None = exc
    shown = exc
    while current is not None:
        if str(current):
            shown = current
            if isinstance(current, OSError):
                break
        current = current.__cause__ or current.__context__
    return f"{type(shown).__name__}: {shown}" if str(shown) else type(shown).__name__
