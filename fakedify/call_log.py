"""The fake Dify's own log of run calls: when each arrived and when its answer was complete.

Benchmarks read it (GET /_fake/calls) to measure how full the batch kept its concurrency over a whole run, from
the upstream's side: no clock of the client, the database or the runner decides the figure.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from dataclasses import dataclass

MAX_LOGGED_CALLS = 1_000_000  # 16 MB of floats at most: a long-lived demo fake must not grow for ever


class CallLog:
    """(start, end) of every run call, on this process's monotonic clock, oldest first."""

    def __init__(self, limit: int = MAX_LOGGED_CALLS) -> None:
        self.calls: collections.deque[tuple[float, float]] = collections.deque(maxlen=limit)

    def record(self, started: float) -> None:
        self.calls.append((started, time.monotonic()))

    def clear(self) -> None:
        self.calls.clear()

    def as_list(self) -> list[list[float]]:
        return [[round(start, 6), round(end, 6)] for start, end in self.calls]


@dataclass(frozen=True)
class Occupancy:
    """Calls in flight over a whole run: from the first call's start to the last call's end."""

    calls: int
    span: float  # seconds
    mean_in_flight: float

    def efficiency(self, concurrency: int) -> float:
        return self.mean_in_flight / concurrency


def occupancy(calls: Iterable[tuple[float, float]]) -> Occupancy:
    spans = list(calls)
    if not spans:
        return Occupancy(0, 0.0, 0.0)
    first, last = min(start for start, _ in spans), max(end for _, end in spans)
    busy = sum(end - start for start, end in spans)
    span = last - first
    return Occupancy(len(spans), span, busy / span if span > 0 else 0.0)


@dataclass(frozen=True)
class Losses:
    """Where the places not in use over a whole run went, each as a share of concurrency × span (they add up to
    1 − efficiency): before the first `concurrency` calls were all in flight, between a call's end and the start of
    its successor, and in the last calls' tail."""

    ramp: float
    refills: float
    tail: float
    median_refill: float  # seconds from a call's end to its successor's start


def losses(calls: Iterable[tuple[float, float]], concurrency: int) -> Losses:
    """The k-th call to end is succeeded by the (k + concurrency)-th to start (both in time order)."""
    spans = list(calls)
    starts = sorted(start for start, _ in spans)
    ends = sorted(end for _, end in spans)
    if len(starts) <= concurrency:
        return Losses(0.0, 0.0, 0.0, 0.0)
    first, last = starts[0], ends[-1]
    gaps = sorted(start - end for start, end in zip(starts[concurrency:], ends, strict=False))
    whole = concurrency * (last - first)
    return Losses(
        ramp=sum(start - first for start in starts[:concurrency]) / whole,
        refills=sum(gaps) / whole,
        tail=sum(last - end for end in ends[-concurrency:]) / whole,
        median_refill=gaps[len(gaps) // 2],
    )
