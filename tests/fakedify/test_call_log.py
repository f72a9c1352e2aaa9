"""The fake Dify's log of run calls, and the whole-run occupancy bench/throughput.py computes from it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fakedify.call_log import losses, occupancy
from fakedify.harness import FakeDifyProcess, running_fake_dify

AUTH = {"Authorization": "Bearer app-test"}


@pytest.fixture(scope="module")
def slow() -> Iterator[FakeDifyProcess]:
    with running_fake_dify("--latency-ms", "50") as server:
        yield server


def calls(fake: FakeDifyProcess) -> list[list[float]]:
    return list(httpx.get(f"{fake.root}/_fake/calls", timeout=5).json()["calls"])


def test_the_fake_logs_each_run_call_from_its_arrival_to_its_answer_and_nothing_else(slow: FakeDifyProcess) -> None:
    fake = slow
    fake.reset()
    body = {"inputs": {"text": "x"}, "user": "tester"}
    httpx.post(f"{fake.url}/workflows/run", json={**body, "response_mode": "blocking"}, headers=AUTH, timeout=10)
    httpx.post(f"{fake.url}/workflows/run", json={**body, "response_mode": "streaming"}, headers=AUTH, timeout=10)
    httpx.get(f"{fake.url}/parameters", headers=AUTH, timeout=10)

    logged = calls(fake)

    assert len(logged) == 2
    assert all(end - start >= 0.05 for start, end in logged)  # the run's latency is inside the logged span
    assert logged[0][1] <= logged[1][0]

    fake.reset()
    assert calls(fake) == []


def test_occupancy_is_the_mean_number_of_calls_in_flight_from_the_first_start_to_the_last_end() -> None:
    # Two places: 2 s of calls, then one place left empty for 1 s, over 2 s in all.
    whole = occupancy([(0.0, 1.0), (0.0, 1.0), (1.0, 2.0)])

    assert (whole.calls, whole.span, whole.mean_in_flight) == (3, 2.0, 1.5)
    assert whole.efficiency(2) == 0.75
    assert occupancy([]).mean_in_flight == 0.0


def test_the_places_lost_add_up_to_what_efficiency_misses_ramp_refills_and_tail() -> None:
    # Two places: the second call starts 0.2 s late, successors start 0.1 s and 0 s after their forerunners end.
    calls = [(0.0, 1.0), (0.2, 1.2), (1.1, 2.1), (1.2, 2.2)]

    lost = losses(calls, 2)

    assert (lost.ramp, lost.refills, lost.tail) == pytest.approx((0.2 / 4.4, 0.1 / 4.4, 0.1 / 4.4))
    assert lost.ramp + lost.refills + lost.tail == pytest.approx(1 - occupancy(calls).efficiency(2))
    assert lost.median_refill == pytest.approx(0.1)
