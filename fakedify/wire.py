"""How the fake writes its answers: byte for byte as Dify 1.13 does (../shared/dify-real/README.md).

SSE events by orjson (compact, raw UTF-8), blocking answers by json.dumps (spaces, \\uXXXX, no newline), errors and
run details by ujson through flask-restx (compact, \\uXXXX, "\\/", a final newline)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

PING = b"event: ping\n\n"
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(event: dict[str, Any]) -> bytes:
    """One SSE event."""
    return b"data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def blocking(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    """A blocking run's or message's answer (and the fake's own /_fake answers)."""
    text = json.dumps(body)
    return web.Response(status=status, text=text, content_type="application/json", charset="utf-8", headers=headers)


def restx(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    """An error answer, a run's details, a stop's answer: flask-restx's output_json."""
    text = json.dumps(body, separators=(",", ":")).replace("/", "\\/") + "\n"
    headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=text.encode(), headers=headers)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return restx(status, {"code": code, "message": message, "status": status}, headers)


def unauthorized() -> web.Response:
    return error(401, "unauthorized", "Access token is invalid")
