"""Reading Dify's answers: a blocking body, a stream's events (`StreamState`), a workflow run looked up later,
and an app's `user_input_form`. Everything here fills a `CallResult` or raises `BadResponse`; nothing does I/O."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from batches.choices import ErrorType
from batches.db import strictjson
from batches.dify.errors import classify, classify_run_error
from batches.dify.types import (
    KEPT_EVENTS,
    MAX_COUNT,
    MAX_ID_CHARS,
    OK_STATUSES,
    PAUSE_EVENTS,
    PAUSED_REASON,
    BadResponse,
    CallResult,
    InputVariable,
    OnStarted,
)


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    """A token count the database can hold; anything unreadable counts as 0 (it is no reason to run again)."""
    try:
        number = int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(max(number, 0), MAX_COUNT)


MAX_PRICE = Decimal(10) ** 7  # the price column's range


def price(value: Any) -> str:
    """Dify's total_price as a decimal string the database can hold ("" when absent or unreadable)."""
    try:
        number = Decimal(str(value))
    except (ArithmeticError, ValueError):
        return ""
    return str(number) if number.is_finite() and 0 <= number < MAX_PRICE else ""


def seconds(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _ids(result: CallResult, event: dict[str, Any], mode: str) -> None:
    """Remember the upstream ids an event carries."""
    if not result.workflow_run_id and event.get("workflow_run_id"):
        result.workflow_run_id = _id(event["workflow_run_id"])
    if not result.stop_task_id and event.get("task_id"):
        result.stop_task_id = _id(event["task_id"])
    own_id = event.get("task_id") if mode == "workflow" else event.get("message_id") or event.get("id")
    if not result.task_id and own_id:
        result.task_id = _id(own_id)


def _id(value: Any) -> str:
    return str(value)[:MAX_ID_CHARS]


def _outputs(value: Any) -> dict[str, Any]:
    """A run's outputs: an object, or a JSON text of one (anything else: no outputs)."""
    if isinstance(value, str) and value:
        value = strictjson.value_of(value)
        if value is None:
            raise BadResponse("outputs are a text that is not JSON")
    return value if isinstance(value, dict) else {}


def workflow_data(result: CallResult, data: Any) -> CallResult:
    """Fill the result from a workflow run's `data` (blocking answer, workflow_finished, GET run)."""
    if not isinstance(data, dict):
        raise BadResponse("workflow answer without data")
    status = str(data.get("status") or "")
    result.upstream_status = status[:30]
    result.total_tokens = _count(data.get("total_tokens"))
    result.elapsed = seconds(data.get("elapsed_time"))
    if status in OK_STATUSES:
        result.ok, result.outputs = True, _outputs(data.get("outputs"))
        return result
    error = str(data.get("error") or "no error message")
    if status == "paused":
        return result.fail(ErrorType.APP_ERROR, f"workflow paused: {PAUSED_REASON}")
    if status == "stopped":  # from Dify's console or past its execution time limit: running it again pays again
        result.final = True
        return result.fail(ErrorType.WORKFLOW_FAILED, f"workflow stopped: {error}")
    if status == "failed":
        return result.fail(classify_run_error(error), f"workflow failed: {error}")
    raise BadResponse(f"workflow answer with unexpected status {status!r}")


def _message_data(result: CallResult, body: dict[str, Any], mode: str, answer: str) -> CallResult:
    """Fill the result from a completion/chat answer (blocking body or message_end)."""
    usage = mapping(mapping(body.get("metadata")).get("usage"))
    result.total_tokens = _count(usage.get("total_tokens"))
    result.elapsed = seconds(usage.get("latency"))
    result.price, result.currency = price(usage.get("total_price")), str(usage.get("currency") or "")[:10]
    result.ok, result.upstream_status, result.outputs = True, "succeeded", {"answer": answer}
    if mode == "chat" and body.get("conversation_id"):
        result.outputs["conversation_id"] = body["conversation_id"]
    return result


def parse_blocking(result: CallResult, raw: bytes, mode: str) -> CallResult:
    """Interpret a blocking answer's JSON body."""
    body = strictjson.object_of(raw)
    if body is None:
        raise BadResponse("unparseable JSON answer", raw)
    _ids(result, body, mode)
    if body.get("event") in PAUSE_EVENTS:
        result.upstream_status = "paused"
        return result.fail(ErrorType.APP_ERROR, f"workflow paused ({body['event']}): {PAUSED_REASON}")
    if mode == "workflow" or "data" in body:
        return workflow_data(result, body.get("data"))
    if not isinstance(body.get("answer"), str):
        raise BadResponse("message answer without 'answer'")
    return _message_data(result, body, mode, body["answer"])


class StreamState:
    """Follows one SSE answer until its finishing event."""

    def __init__(self, result: CallResult, mode: str, on_started: OnStarted | None) -> None:
        self.result, self.mode, self.on_started = result, mode, on_started
        self.answer: list[str] = []
        self.done = False
        self.files: list[dict[str, Any]] = []
        self.max_kept: int | None = None  # bytes of answer text and finishing events the call may keep
        self.kept = 0

    def handle(self, sse_event: str, data: str) -> None:
        if sse_event == "ping" or not data.strip():
            return
        event = strictjson.object_of(data)
        if event is None:
            raise BadResponse("unparseable stream event", data)
        self._keep(str(event.get("event") or ""), event, data)
        self._started(event)
        self._dispatch(str(event.get("event") or ""), event)

    def _keep(self, name: str, event: dict[str, Any], data: str) -> None:
        if name not in KEPT_EVENTS or self.max_kept is None:
            return
        if name in ("message", "agent_message"):  # the text, not each chunk's ids
            self.kept += len(str(event.get("answer") or "").encode())
        elif name == "message_replace":
            self.kept = len(str(event.get("answer") or "").encode())
        else:
            self.kept += len(data.encode())
        if self.kept > self.max_kept:
            raise BadResponse(f"answer larger than {self.max_kept} bytes")

    def _started(self, event: dict[str, Any]) -> None:
        before = self.result.task_id
        _ids(self.result, event, self.mode)
        if self.on_started is not None and not before and self.result.task_id:
            # The stream's own task id: what the stop endpoint wants, in every mode.
            self.on_started(self.result.workflow_run_id, self.result.stop_task_id or self.result.task_id)

    def _dispatch(self, name: str, event: dict[str, Any]) -> None:
        result = self.result
        if name in ("message", "agent_message"):
            self.answer.append(str(event.get("answer") or ""))
        elif name == "message_replace":
            self.answer = [str(event.get("answer") or "")]
        elif name == "message_file":  # a file a tool made, part of the answer
            self.files.append({key: event[key] for key in ("id", "type", "belongs_to", "url") if key in event})
        elif name == "message_end":
            self.done = True
            _message_data(result, event, self.mode, "".join(self.answer))
            if self.files and result.outputs is not None:
                result.outputs["files"] = self.files
        elif name == "workflow_finished":
            workflow_data(result, event.get("data"))
            self.done = self.mode == "workflow" or not result.ok
        elif name == "error":  # the same codes and statuses as an HTTP error answer, classified alike
            self.done = True
            code, message = str(event.get("code") or "error"), str(event.get("message") or "")
            status = event.get("status")
            result.fail(
                classify(status if isinstance(status, int) else 400, code, message),
                f"stream error {code}: {message}",
            )
        elif name in PAUSE_EVENTS:
            self.done = True
            result.upstream_status = "paused"
            result.fail(ErrorType.APP_ERROR, f"workflow paused ({name}): {PAUSED_REASON}")


def parse_input_form(form: list[Any]) -> list[InputVariable]:
    """Every `{type: {variable, label, ...}}` item of a `user_input_form`, whatever the type."""
    variables = []
    for item in form:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        kind, spec = next(iter(item.items()))
        if isinstance(spec, dict) and spec.get("variable"):
            variables.append(_input_variable(str(kind), spec))
    return variables


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _input_variable(kind: str, spec: dict[str, Any]) -> InputVariable:
    return InputVariable(
        variable=str(spec["variable"]),
        label=str(spec.get("label") or spec["variable"]),
        required=bool(spec.get("required", False)),
        type=kind,
        options=tuple(str(option) for option in _list(spec.get("options"))),
        max_length=_int_or_none(spec.get("max_length")),
        default=spec.get("default"),
        allowed_file_types=_strings(spec.get("allowed_file_types")),
        allowed_file_extensions=_strings(spec.get("allowed_file_extensions")),
        allowed_file_upload_methods=_strings(spec.get("allowed_file_upload_methods")),
    )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in _list(value))
