"""A fake Dify Service API server (aiohttp.web) for tests, demos and benchmarks.

Speaks workflow, completion and chat apps at once, streaming and blocking, with deterministic outputs that echo the
inputs, configurable latency, injected faults, rate and concurrency limits, and its own statistics.

Runs are server-side timers independent of the HTTP response: a client that goes away does not stop a run, which
finishes and is stored (and counted as paid) as in Dify. Injected faults never produce a successful run.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import random
import signal
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

logger = logging.getLogger("batches.fake_dify")

TRANSIENT_FAULTS = ("server_error", "bad_gateway", "rate_limit", "reset", "cut")
FAULT_TYPES = (
    *TRANSIENT_FAULTS,
    *("too_many", "hang", "bad_json", "workflow_failed", "invalid_param", "app_unavailable", "auth", "paused"),
)
MODES = ("workflow", "completion", "chat")
RUN_FAULTS = frozenset({"cut", "bad_json", "workflow_failed", "paused"})  # faults that happen during a run
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
PING = b"event: ping\n\n"
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
WORKFLOW_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "fake-dify-workflow"))
MAX_STORED_RUNS = 200_000


# ----------------------------------------------------------------------------------------------- options


@dataclass
class FakeOptions:
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    faults: dict[str, float] = field(default_factory=dict)
    rpm: int | None = None
    max_active: int | None = None
    seed: int | None = None
    variables: list[dict[str, Any]] = field(default_factory=list)
    ping_interval: float = 10.0

    def fault_table(self) -> list[tuple[str, float]]:
        """(fault, cumulative probability) for one draw per call; fail_rate is spread over the transient faults."""
        rates = {name: self.fail_rate / len(TRANSIENT_FAULTS) for name in TRANSIENT_FAULTS if self.fail_rate}
        for name, rate in self.faults.items():
            rates[name] = rates.get(name, 0.0) + rate
        table, total = [], 0.0
        for name, rate in rates.items():
            if rate > 0:
                total += rate
                table.append((name, total))
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}, more than 1")
        return table

    def as_dict(self) -> dict[str, Any]:
        keys = ("latency_ms", "fail_rate", "faults", "rpm", "max_active", "seed", "ping_interval")
        return {key: getattr(self, key) for key in keys}


def parse_faults(text: str) -> dict[str, float]:
    """`server_error=0.05,reset=0.02` → {"server_error": 0.05, "reset": 0.02}."""
    faults: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, rate = item.partition("=")
        if not sep or name.strip() not in FAULT_TYPES:
            raise ValueError(f"bad fault {item!r}: use TYPE=RATE with TYPE one of {', '.join(FAULT_TYPES)}")
        faults[name.strip()] = _rate(rate, name)
    return faults


def _rate(value: Any, name: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate of {name} must be between 0 and 1")
    return rate


def parse_variables(text: str) -> list[dict[str, Any]]:
    """`text:Text:required,lang:Language` → user_input_form items (a 4th part may name the item type)."""
    form = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = item.split(":")
        variable, label = parts[0], (parts[1] if len(parts) > 1 and parts[1] else parts[0])
        flags = parts[2:]
        kind = next((flag for flag in flags if flag and flag != "required"), "text-input")
        spec = {"label": label, "variable": variable, "required": "required" in flags, "max_length": 256, "default": ""}
        form.append({kind: spec})
    return form


# ----------------------------------------------------------------------------------------------- state


class Stats:
    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.calls = self.succeeded = self.rows_paid_twice = self.duplicate_successes = self.stopped = 0
        self.max_in_flight = self.in_flight
        self.faults: collections.Counter[str] = collections.Counter()
        self.status_counts: collections.Counter[str] = collections.Counter()
        self.by_mode: collections.Counter[str] = collections.Counter()
        self.limited: collections.Counter[str] = collections.Counter()
        self.successes: dict[str, int] = {}

    def success(self, key: str) -> None:
        self.succeeded += 1
        count = self.successes[key] = self.successes.get(key, 0) + 1
        if count > 1:
            self.duplicate_successes += 1
            self.rows_paid_twice += count == 2

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "succeeded": self.succeeded,
            "stopped": self.stopped,  # runs stopped through the stop endpoint (GET says `running` for ever)
            "faults": dict(self.faults),
            "status_counts": dict(self.status_counts),
            "rows_paid_twice": self.rows_paid_twice,
            "duplicate_successes": self.duplicate_successes,
            "by_mode": dict(self.by_mode),
            "limited": dict(self.limited),
        }


class Run:
    """One run (workflow run or message), finished by a timer whatever happens to the HTTP response."""

    __slots__ = (
        "id", "task_id", "message_id", "conversation_id", "mode", "inputs", "query", "key", "fault", "status",
        "error", "created_at", "started", "finished_at", "elapsed", "timer", "done", "epoch",
    )  # fmt: skip

    def __init__(self, mode: str, inputs: dict[str, Any], query: str, key: str, fault: str | None) -> None:
        self.id, self.task_id = str(uuid.uuid4()), str(uuid.uuid4())
        self.message_id = self.id if mode != "workflow" else ""
        self.conversation_id = str(uuid.uuid4()) if mode == "chat" else ""
        self.mode, self.inputs, self.query, self.key, self.fault = mode, inputs, query, key, fault
        self.status, self.error = "running", ""
        self.created_at, self.started = int(time.time()), time.monotonic()
        self.finished_at: int | None = None
        self.elapsed = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.done = asyncio.Event()
        self.epoch = 0

    @property
    def text(self) -> str:
        echoed = {**self.inputs, "query": self.query} if self.mode == "chat" else self.inputs
        return "echo: " + json.dumps(echoed, sort_keys=True, ensure_ascii=False)

    @property
    def tokens(self) -> int:
        return 10 + len(self.text) // 4

    def outputs(self) -> dict[str, Any] | None:
        if self.status != "succeeded":
            return None
        return {"echo": self.inputs, "text": self.text} if self.mode == "workflow" else {"answer": self.text}

    def data(self) -> dict[str, Any]:
        """The run as GET /workflows/run/{id} and the blocking/finished `data` show it."""
        return {
            "id": self.id,
            "workflow_id": WORKFLOW_ID,
            "status": self.status,
            "outputs": self.outputs(),
            "error": self.error or None,
            "elapsed_time": round(self.elapsed, 4),
            "total_tokens": self.tokens if self.status == "succeeded" else 0,
            "total_steps": 3,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


# Serialised as Dify 1.13 does (../shared/dify-real/README.md): SSE events by orjson (compact, raw UTF-8), blocking
# answers by json.dumps (spaces, \uXXXX, no newline), errors and run details by ujson (compact, \uXXXX, "\/", "\n").
def _frame(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    """A blocking run's or message's answer."""
    text = json.dumps(body)
    return web.Response(status=status, text=text, content_type="application/json", charset="utf-8", headers=headers)


def _restx(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    """An error answer, a run's details, a stop's answer: flask-restx's output_json."""
    text = json.dumps(body, separators=(",", ":")).replace("/", "\\/") + "\n"
    headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=text.encode(), headers=headers)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _restx(status, {"code": code, "message": message, "status": status}, headers)


def _row_key(inputs: dict[str, Any], query: str) -> str:
    key = json.dumps(inputs, sort_keys=True, ensure_ascii=False)
    return key + "\x00" + query if query else key


# ----------------------------------------------------------------------------------------------- server


class FakeDify:
    def __init__(self, options: FakeOptions) -> None:
        self.options = options
        self.table = options.fault_table()
        self.rng = random.Random(options.seed)
        self.stats = Stats()
        self.runs: dict[str, Run] = {}
        self.tasks: dict[str, Run] = {}
        self.directive_calls: dict[str, int] = {}
        self.window: collections.deque[float] = collections.deque()
        self.epoch = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/workflows/run", self.workflow_run)
        app.router.add_post("/v1/completion-messages", self.completion_message)
        app.router.add_post("/v1/chat-messages", self.chat_message)
        app.router.add_get("/v1/workflows/run/{run_id}", self.get_run)
        app.router.add_post("/v1/workflows/tasks/{task_id}/stop", self.stop)
        app.router.add_post("/v1/completion-messages/{task_id}/stop", self.stop)
        app.router.add_post("/v1/chat-messages/{task_id}/stop", self.stop)
        app.router.add_get("/v1/parameters", self.parameters)
        app.router.add_get("/_fake/stats", self.get_stats)
        app.router.add_post("/_fake/reset", self.reset)
        app.router.add_get("/_fake/config", self.get_config)
        app.router.add_post("/_fake/config", self.configure)
        return app

    # --- run calls

    async def workflow_run(self, request: web.Request) -> web.StreamResponse:
        return await self._run_call(request, "workflow")

    async def completion_message(self, request: web.Request) -> web.StreamResponse:
        return await self._run_call(request, "completion")

    async def chat_message(self, request: web.Request) -> web.StreamResponse:
        return await self._run_call(request, "chat")

    async def _run_call(self, request: web.Request, mode: str) -> web.StreamResponse:
        self.stats.calls += 1
        self.stats.by_mode[mode] += 1
        response = await self._serve_call(request, mode)
        self.stats.status_counts[str(response.status)] += 1
        return response

    async def _serve_call(self, request: web.Request, mode: str) -> web.StreamResponse:
        if not _authorized(request):
            return _error(401, "unauthorized", "Access token is invalid")
        body = await _read_body(request)
        problem = body if isinstance(body, web.Response) else self._invalid(body, mode)
        if problem is not None:
            return problem
        assert isinstance(body, dict)
        limited = self._limited()
        if limited is not None:
            return limited
        key = _row_key(body["inputs"], str(body.get("query") or ""))
        return await self._in_flight(request, mode, body, key, self._pick_fault(body["inputs"], key))

    async def _in_flight(
        self, request: web.Request, mode: str, body: dict[str, Any], key: str, fault: str | None
    ) -> web.StreamResponse:
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if fault:
                stats.faults[fault] += 1
            if fault and fault not in RUN_FAULTS:
                return await _immediate_fault(request, fault)
            run = self._start_run(mode, body, key, fault)
            if body.get("response_mode") == "streaming":
                return await self._stream(request, run)
            return await self._blocking(run)
        finally:
            stats.in_flight -= 1

    def _invalid(self, body: dict[str, Any], mode: str) -> web.Response | None:
        """A 400 for a request Dify would refuse."""
        inputs = body.get("inputs")
        if not isinstance(inputs, dict):
            return _error(400, "invalid_param", "inputs is required and must be an object")
        if not isinstance(body.get("user"), str) or not body["user"]:
            return _error(400, "invalid_param", "user is required")
        if body.get("response_mode", "blocking") not in ("streaming", "blocking"):
            return _error(400, "invalid_param", "response_mode must be streaming or blocking")
        if mode == "chat" and (not isinstance(body.get("query"), str) or not body["query"]):
            return _error(400, "invalid_param", "query is required")
        if inputs.get("_fault") and inputs["_fault"] not in FAULT_TYPES:
            return _error(400, "invalid_param", f"unknown _fault {inputs['_fault']!r}")
        if not str(inputs.get("_fault_times", 0)).strip().isdigit():  # a CSV cell is a string of digits
            return _error(400, "invalid_param", "_fault_times must be an integer")
        for item in self.options.variables:
            problem = _input_problem(*next(iter(item.items())), inputs)
            if problem:
                return _error(400, "invalid_param", problem)
        return None

    def _limited(self) -> web.Response | None:
        """Refused when --max-active runs are in flight (a 400, as Dify 1.13 answers its app concurrency cap) or
        --rpm calls were accepted in the last 60 s (429, as Dify Cloud's workspace limit)."""
        options = self.options
        if options.max_active is not None and self.stats.in_flight >= options.max_active:
            self.stats.limited["max_active"] += 1
            message = "Too many requests. Please try again later. The current maximum concurrent requests allowed for"
            return _error(400, "invalid_param", f"{message} {WORKFLOW_ID} is {options.max_active}.")
        if options.rpm is not None:
            now, window = time.monotonic(), self.window
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= options.rpm:
                self.stats.limited["rpm"] += 1
                wait = max(1, math.ceil(window[0] + 60 - now)) if window else 60
                return _error(429, "rate_limit_error", "Rate Limit Error", {"Retry-After": str(wait)})
            window.append(now)
        return None

    def _pick_fault(self, inputs: dict[str, Any], key: str) -> str | None:
        directive = inputs.get("_fault")
        if directive:
            times = inputs.get("_fault_times")
            if times in (None, ""):
                return str(directive)
            calls = self.directive_calls[key] = self.directive_calls.get(key, 0) + 1
            return str(directive) if calls <= int(str(times)) else None
        if self.table:
            draw = self.rng.random()
            for name, cumulative in self.table:
                if draw < cumulative:
                    return name
        return None

    # --- runs

    def _start_run(self, mode: str, body: dict[str, Any], key: str, fault: str | None) -> Run:
        inputs = body["inputs"]
        run = Run(mode, inputs, str(body.get("query") or ""), key, fault)
        run.epoch = self.epoch
        latency = _latency(inputs, self.options.latency_ms)
        self._store(run)
        status, error = (FAULT_STATUS[fault], f"fake fault: {fault}") if fault else ("succeeded", "")
        if latency <= 0:
            self._finish(run, status, error)
        else:
            run.timer = asyncio.get_running_loop().call_later(latency, self._finish, run, status, error)
        return run

    def _store(self, run: Run) -> None:
        if len(self.runs) >= MAX_STORED_RUNS:
            old = self.runs.pop(next(iter(self.runs)))
            self.tasks.pop(old.task_id, None)
            self.tasks.pop(old.message_id, None)
        self.runs[run.id] = run
        self.tasks[run.task_id] = run
        if run.message_id:
            self.tasks[run.message_id] = run

    def _finish(self, run: Run, status: str, error: str) -> None:
        if run.status != "running":
            return
        run.status, run.error = status, error
        run.finished_at, run.elapsed = int(time.time()), time.monotonic() - run.started
        if run.timer is not None:
            run.timer.cancel()
        if status == "succeeded" and run.epoch == self.epoch:
            self.stats.success(run.key)
        run.done.set()

    async def _blocking(self, run: Run) -> web.Response:
        await run.done.wait()
        if run.fault in ("cut", "bad_json"):
            text = '{"workflow_run_id": "' + run.id + '", "data": {"status": "succ' if run.fault == "cut" else "oops"
            return web.Response(text=text, content_type="application/json")
        if run.mode == "workflow":
            return _json(200, {"workflow_run_id": run.id, "task_id": run.task_id, "data": run.data()})
        if run.status == "paused":
            return _json(200, {"event": "workflow_paused", "task_id": run.task_id, "data": {"status": "paused"}})
        if run.status != "succeeded":
            return _error(400, "completion_request_error", run.error or f"run {run.status}")
        body = self._message_body(run, "message", run.text)
        return _json(200, {**body, "mode": run.mode, "metadata": self._usage(run)})

    def _message_body(self, run: Run, event: str, answer: str | None = None) -> dict[str, Any]:
        """A completion/chat event: `message` (with an answer chunk), `message_end` or the blocking body."""
        body: dict[str, Any] = {"event": event, "task_id": run.task_id, "id": run.message_id}
        body["message_id"] = run.message_id
        if run.conversation_id:
            body["conversation_id"] = run.conversation_id
        if answer is not None:
            body.update(answer=answer, created_at=run.created_at)
        return body

    def _usage(self, run: Run) -> dict[str, Any]:
        usage = {"prompt_tokens": 10, "completion_tokens": run.tokens - 10, "total_tokens": run.tokens}
        return {"usage": {**usage, "latency": round(run.elapsed, 4)}}

    async def _stream(self, request: web.Request, run: Run) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        await response.write(self._opening(run))
        if run.fault in ("cut", "bad_json"):
            if run.fault == "bad_json":
                await response.write(b"data: {not json at all\n\n")
            await response.write_eof()
            return response
        while not run.done.is_set():
            try:
                async with asyncio.timeout(self.options.ping_interval):
                    await run.done.wait()
            except TimeoutError:
                await response.write(PING)
        await response.write(self._closing(run))
        await response.write_eof()
        return response

    def _opening(self, run: Run) -> bytes:
        if run.mode != "workflow":
            return _frame(self._message_body(run, "message", run.text[: len(run.text) // 2])) + PING
        base = {"task_id": run.task_id, "workflow_run_id": run.id}
        started = {"id": run.id, "workflow_id": WORKFLOW_ID, "sequence_number": 1, "created_at": run.created_at}
        node = {"id": str(uuid.uuid4()), "node_id": "start", "node_type": "start", "title": "Start", "index": 1}
        return (  # Dify relays workflow streams from its worker: the first thing sent is a ping
            PING
            + _frame({"event": "workflow_started", **base, "data": started})
            + _frame({"event": "node_started", **base, "data": node})
        )

    def _closing(self, run: Run) -> bytes:
        if run.mode != "workflow":
            return self._message_closing(run)
        base = {"task_id": run.task_id, "workflow_run_id": run.id}
        node = {"id": str(uuid.uuid4()), "node_id": "llm", "node_type": "llm", "title": "LLM", "index": 2}
        frames = [
            _frame({"event": "node_finished", **base, "data": {"node_id": "start", "status": "succeeded"}}),
            _frame({"event": "node_started", **base, "data": node}),
            _frame({"event": "node_finished", **base, "data": {**node, "status": run.status, "error": run.error}}),
        ]
        if run.status == "paused":
            form = {"form_id": str(uuid.uuid4()), "node_id": "llm", "node_title": "Human Input", "actions": []}
            frames.append(_frame({"event": "human_input_required", **base, "data": form}))
            paused = {"workflow_run_id": run.id, "paused_nodes": ["llm"], "outputs": {}, "status": "paused"}
            frames.append(_frame({"event": "workflow_paused", **base, "data": paused}))
        else:
            frames.append(_frame({"event": "workflow_finished", **base, "data": run.data()}))
        return b"".join(frames)

    def _message_closing(self, run: Run) -> bytes:
        if run.status == "succeeded":
            half = len(run.text) // 2
            rest = _frame(self._message_body(run, "message", run.text[half:]))
            end = {**self._message_body(run, "message_end"), "metadata": self._usage(run)}
            return rest + _frame(end)
        if run.status == "paused":
            return _frame({"event": "human_input_required", "task_id": run.task_id, "message_id": run.message_id})
        if run.status == "stopped":  # Dify ends a stopped message stream like a finished one, answer so far
            return _frame({**self._message_body(run, "message_end"), "metadata": self._usage(run)})
        # Dify's `error` event: no task_id, the code and status of the same error over HTTP.
        error: dict[str, Any] = {"event": "error", "conversation_id": run.conversation_id or None}
        error.update(message_id=run.message_id, created_at=run.created_at, code="completion_request_error")
        return _frame({**error, "message": run.error or run.status, "status": 400})

    # --- other endpoints

    async def get_run(self, request: web.Request) -> web.Response:
        if not _authorized(request):
            return _error(401, "unauthorized", "Access token is invalid")
        run = self.runs.get(request.match_info["run_id"])
        if run is None:
            return _error(404, "not_found", "Workflow run not found")
        inputs = json.dumps(run.inputs, ensure_ascii=False)
        data = {**run.data(), "inputs": inputs, "outputs": run.outputs() or {}}
        if run.status == "stopped":  # as in Dify 1.13: a stopped run is never marked finished (dify-real case 22)
            data.update(status="running", error=None, finished_at=None, elapsed_time=0.0)
        return _restx(200, data)

    async def stop(self, request: web.Request) -> web.Response:
        if not _authorized(request):
            return _error(401, "unauthorized", "Access token is invalid")
        run = self.tasks.get(request.match_info["task_id"])
        if run is not None and run.status == "running":
            self._finish(run, "stopped", "Stopped by user.")
            self.stats.stopped += 1
        return _restx(200, {"result": "success"})

    async def parameters(self, request: web.Request) -> web.Response:
        if not _authorized(request):
            return _error(401, "unauthorized", "Access token is invalid")
        form = self.options.variables
        return _restx(
            200, {"opening_statement": "", "user_input_form": form, "file_upload": {}, "system_parameters": {}}
        )

    async def get_stats(self, request: web.Request) -> web.Response:
        return _json(200, {**self.stats.as_dict(), "runs_stored": len(self.runs)})

    async def reset(self, request: web.Request) -> web.Response:
        self.stats.reset()
        self.runs.clear()
        self.tasks.clear()
        self.directive_calls.clear()
        self.window.clear()
        self.epoch += 1
        return _json(200, {"result": "success"})

    async def get_config(self, request: web.Request) -> web.Response:
        return _json(200, self.options.as_dict())

    async def configure(self, request: web.Request) -> web.Response:
        body = await _read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            self._apply(body)
        except (TypeError, ValueError) as exc:
            return _error(400, "invalid_param", str(exc))
        return _json(200, self.options.as_dict())

    def _apply(self, changes: dict[str, Any]) -> None:
        """Change options live; all or nothing."""
        options = FakeOptions(**{**self.options.__dict__})
        for name, value in changes.items():
            if name not in ("latency_ms", "fail_rate", "faults", "rpm", "max_active", "seed", "ping_interval"):
                raise ValueError(f"unknown option {name!r}")
            setattr(options, name, _option_value(name, value))
        self.table = options.fault_table()
        self.options = options
        if "seed" in changes:
            self.rng.seed(options.seed)


def _option_value(name: str, value: Any) -> Any:
    if name == "faults":
        faults = parse_faults(value) if isinstance(value, str) else dict(value or {})
        for fault, rate in faults.items():
            if fault not in FAULT_TYPES:
                raise ValueError(f"unknown fault {fault!r}")
            faults[fault] = _rate(rate, fault)
        return faults
    if name in ("rpm", "max_active", "seed"):
        return None if value is None else int(value)
    if name == "fail_rate":
        return _rate(value, name)
    return max(0.0, float(value))


REVOKED_KEY_PREFIX = "app-revoked"  # keys the fake refuses, as Dify refuses a deleted key


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


def _authorized(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    return header.startswith("Bearer ") and len(header) > 7 and not header[7:].startswith(REVOKED_KEY_PREFIX)


async def _read_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _error(400, "invalid_param", "the body must be JSON")
    return body if isinstance(body, dict) else _error(400, "invalid_param", "the body must be a JSON object")


def _latency(inputs: dict[str, Any], default_ms: float) -> float:
    value = inputs.get("_latency_ms")
    try:
        return max(0.0, float(value if value is not None else default_ms)) / 1000
    except (TypeError, ValueError):
        return default_ms / 1000


async def _immediate_fault(request: web.Request, fault: str) -> web.StreamResponse:
    """The faults that answer (or refuse to) before any run starts."""
    if fault in JSON_FAULTS:
        status, code, message = JSON_FAULTS[fault]
        return _error(status, code, message, {"Retry-After": "1"} if fault == "rate_limit" else None)
    if fault == "bad_gateway":
        return web.Response(status=502, text=BAD_GATEWAY_PAGE, content_type="text/html")
    if fault == "reset":
        _reset_connection(request)
    await asyncio.sleep(3600 if fault == "reset" else 86400)  # cancelled when the connection goes away
    return _error(504, "gateway_timeout", "gave up waiting")


def _reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP RST, no answer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# ----------------------------------------------------------------------------------------------- running


async def serve(options: FakeOptions, host: str, port: int, announce: Callable[[str], None]) -> dict[str, Any]:
    """Serve until SIGTERM/SIGINT; return the final stats."""
    fake = FakeDify(options)
    runner = web.AppRunner(fake.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    actual_port = runner.addresses[0][1]
    logger.info("fake_dify on %s:%s with %s", host, actual_port, options.as_dict())
    announce(f"http://{host}:{actual_port}/v1")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    stats = {**fake.stats.as_dict(), "runs_stored": len(fake.runs)}
    await runner.cleanup()
    return stats
