"""What the fake refuses before a run starts, as Dify does: a missing or revoked key, a body that is not a JSON
object, a request Dify would answer with 400 invalid_param. Any other bearer token is accepted."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from fakedify import files, wire
from fakedify.options import FAULT_TYPES, FakeOptions

REVOKED_KEY_PREFIX = "app-revoked"  # keys the fake refuses, as Dify refuses a deleted key


def authorized(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    return header.startswith("Bearer ") and len(header) > 7 and not header[7:].startswith(REVOKED_KEY_PREFIX)


async def read_body(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON object sent, or the 400 answer to send back."""
    try:
        body = json.loads(await request.read())
    except ValueError:
        return wire.error(400, "invalid_param", "the body must be JSON")
    return body if isinstance(body, dict) else wire.error(400, "invalid_param", "the body must be a JSON object")


def invalid(
    body: dict[str, Any], mode: str, options: FakeOptions, *, uploads: dict[str, Any] | None = None
) -> web.Response | None:
    """A 400 for a run call Dify would refuse (`uploads`: the uploads a file mapping may name, by id). In
    streaming mode a refused file is one ping and then silence, as Dify answers it (dify-real-files)."""
    problem = _call_problem(body, mode) or _directive_problem(body["inputs"])
    if problem:
        return wire.error(400, "invalid_param", problem)
    problem, about_files = _form_problem(body, options, uploads or {})
    if not problem:
        return None
    if about_files and body.get("response_mode") == "streaming":
        return SilentRefusal(problem)
    return wire.error(400, "invalid_param", problem)


class SilentRefusal(web.Response):
    """What a streamed call whose files Dify refuses gets: fakedify/calls.py answers it with a ping and silence."""

    def __init__(self, problem: str) -> None:
        super().__init__(status=200)
        self.problem = problem


def _call_problem(body: dict[str, Any], mode: str) -> str:
    if not isinstance(body.get("inputs"), dict):
        return "inputs is required and must be an object"
    if not isinstance(body.get("user"), str) or not body["user"]:
        return "user is required"
    if body.get("response_mode", "blocking") not in ("streaming", "blocking"):
        return "response_mode must be streaming or blocking"
    if mode == "chat" and (not isinstance(body.get("query"), str) or not body["query"]):
        return "query is required"
    return ""


def _directive_problem(inputs: dict[str, Any]) -> str:
    """The fake's own per-row directives (`_fault`, `_fault_times`)."""
    if inputs.get("_fault") and inputs["_fault"] not in FAULT_TYPES:
        return f"unknown _fault {inputs['_fault']!r}"
    if not str(inputs.get("_fault_times", 0)).strip().isdigit():  # a CSV cell is a string of digits
        return "_fault_times must be an integer"
    return ""


def _form_problem(body: dict[str, Any], options: FakeOptions, uploads: dict[str, Any]) -> tuple[str, bool]:
    """The first problem with the app's declared variables (--variables), as Dify checks them in order, and
    whether it is about a file."""
    inputs, user = body["inputs"], str(body.get("user") or "")
    for item in options.variables:
        kind, spec = next(iter(item.items()))
        problem = _input_problem(kind, spec, inputs)
        if problem:
            return problem, False
        problem = files.problem(kind, spec, inputs, uploads, user, options.etl)
        if problem:
            return problem, True
    return "", False


def _input_problem(kind: str, spec: dict[str, Any], inputs: dict[str, Any]) -> str:
    """Dify's own check of one declared variable (base_app_generator.py), its message; "" when the value is fine."""
    name, value = spec["variable"], inputs.get(spec["variable"])
    if value in (None, ""):
        return f"{name} is required in input form" if spec["required"] else ""
    if kind in ("text-input", "paragraph", "select") and not isinstance(value, str):
        return f"(type '{kind}') {name} in input form must be a string"
    if kind == "number" and not _is_number(value):
        return f"{name} in input form must be a valid number"
    return ""


def _is_number(value: Any) -> bool:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)
