"""The fake's own statistics (GET /_fake/stats, and the JSON line `manage.py fake_dify` prints on its way out).

`rows_paid_twice` counts the inputs that succeeded more than once since the last reset: the double payments a
client's retries or recovery must not cause."""

from __future__ import annotations

import collections
from typing import Any


class Stats:
    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.parameters_calls = 0  # GET /v1/parameters: the batches' upstream health checks among them
        self.calls = self.succeeded = self.rows_paid_twice = self.duplicate_successes = self.stopped = 0
        self.max_in_flight = self.in_flight
        self.faults: collections.Counter[str] = collections.Counter()
        self.status_counts: collections.Counter[str] = collections.Counter()
        self.by_mode: collections.Counter[str] = collections.Counter()
        self.limited: collections.Counter[str] = collections.Counter()
        self.successes: dict[str, int] = {}

    def call_started(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def success(self, key: str) -> None:
        self.succeeded += 1
        count = self.successes[key] = self.successes.get(key, 0) + 1
        if count > 1:
            self.duplicate_successes += 1
            self.rows_paid_twice += count == 2

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "parameters_calls": self.parameters_calls,
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
