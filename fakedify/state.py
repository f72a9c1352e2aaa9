"""The fake's state, shared by its endpoints (`request.app[FAKE]`): options, fault picker, limits, stats and the
runs it remembers. Starting and finishing runs lives here: runs are server-side timers independent of the HTTP
response, so a run finishes and is stored (and counted as paid) whatever happens to the client, as in Dify."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from fakedify.call_log import CallLog
from fakedify.faults import FAULT_STATUS, FaultPicker
from fakedify.files import FakeFiles
from fakedify.limits import Limiter
from fakedify.options import FakeOptions
from fakedify.run import Run
from fakedify.stats import Stats

MAX_STORED_RUNS = 200_000


class FakeDify:
    def __init__(self, options: FakeOptions) -> None:
        self.options = options
        self.faults = FaultPicker(options)
        self.limiter = Limiter()
        self.stats = Stats()
        self.call_log = CallLog()  # when each run call came and went: bench/throughput.py's whole-run figure
        self.runs: dict[str, Run] = {}
        self.tasks: dict[str, Run] = {}  # by task id and message id, for the stop endpoints
        self.files = FakeFiles()  # uploads (POST /v1/files/upload)
        self.epoch = 0

    def start_run(self, mode: str, body: dict[str, Any], fault: str | None) -> Run:
        """A run that finishes after its latency (`_latency_ms` in its inputs, else --latency-ms)."""
        inputs = body["inputs"]
        run = Run(mode, inputs, str(body.get("query") or ""), fault, self.epoch)
        latency = _latency(inputs, self.options.latency_ms)
        self._store(run)
        status, error = (FAULT_STATUS[fault], f"fake fault: {fault}") if fault else ("succeeded", "")
        if latency <= 0:
            self.finish(run, status, error)
        else:
            run.timer = asyncio.get_running_loop().call_later(latency, self.finish, run, status, error)
        return run

    def finish(self, run: Run, status: str, error: str) -> None:
        if run.finish(status, error) and status == "succeeded" and run.epoch == self.epoch:
            self.stats.success(run.key)

    def stop(self, task_id: str) -> None:
        """The stop endpoints: a running run ends as `stopped`; anything else is left alone."""
        run = self.tasks.get(task_id)
        if run is not None and run.status == "running":
            self.finish(run, "stopped", "Stopped by user.")
            self.stats.stopped += 1

    def reset(self) -> None:
        """Forget runs and zero the stats; runs still going on do not count in the new stats."""
        self.stats.reset()
        self.call_log.clear()
        self.runs.clear()
        self.tasks.clear()
        self.faults.directive_calls.clear()
        self.limiter.window.clear()
        self.files.reset()
        self.epoch += 1

    def configure(self, changes: dict[str, Any]) -> None:
        """Change options live; all or nothing (ValueError/TypeError)."""
        options = self.options.changed(changes)
        self.faults.configure(options, reseed="seed" in changes)
        self.options = options

    def stats_dict(self) -> dict[str, Any]:
        return {**self.stats.as_dict(), **self.files.stats(), "runs_stored": len(self.runs)}

    def _store(self, run: Run) -> None:
        if len(self.runs) >= MAX_STORED_RUNS:
            old = self.runs.pop(next(iter(self.runs)))
            self.tasks.pop(old.task_id, None)
            self.tasks.pop(old.message_id, None)
        self.runs[run.id] = run
        self.tasks[run.task_id] = run
        if run.message_id:
            self.tasks[run.message_id] = run


FAKE = web.AppKey("fake", FakeDify)


def _latency(inputs: dict[str, Any], default_ms: float) -> float:
    value = inputs.get("_latency_ms")
    try:
        return max(0.0, float(value if value is not None else default_ms)) / 1000
    except (TypeError, ValueError):
        return default_ms / 1000
