"""The fake's limits on run calls: --max-active (calls in flight at once) and --rpm (accepted calls per 60 s)."""

from __future__ import annotations

import collections
import math
import time

from aiohttp import web

from fakedify import wire
from fakedify.options import FakeOptions
from fakedify.run import WORKFLOW_ID
from fakedify.stats import Stats

MAX_ACTIVE_MESSAGE = "Too many requests. Please try again later. The current maximum concurrent requests allowed for"


class Limiter:
    def __init__(self) -> None:
        self.window: collections.deque[float] = collections.deque()  # when the calls of the last 60 s came

    def refusal(self, options: FakeOptions, stats: Stats) -> web.Response | None:
        """Refused when --max-active runs are in flight (a 400, as Dify 1.13 answers its app concurrency cap) or
        --rpm calls were accepted in the last 60 s (429, as Dify Cloud's workspace limit)."""
        if options.max_active is not None and stats.in_flight >= options.max_active:
            stats.limited["max_active"] += 1
            return wire.error(400, "invalid_param", f"{MAX_ACTIVE_MESSAGE} {WORKFLOW_ID} is {options.max_active}.")
        if options.rpm is not None:
            return self._rpm_refusal(options.rpm, stats)
        return None

    def _rpm_refusal(self, rpm: int, stats: Stats) -> web.Response | None:
        now, window = time.monotonic(), self.window
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= rpm:
            stats.limited["rpm"] += 1
            wait = max(1, math.ceil(window[0] + 60 - now)) if window else 60
            return wire.error(429, "rate_limit_error", "Rate Limit Error", {"Retry-After": str(wait)})
        window.append(now)
        return None
