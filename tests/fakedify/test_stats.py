"""The fake's statistics and their reset (fakedify/stats.py, GET /_fake/stats, POST /_fake/reset)."""

from __future__ import annotations

import httpx

from fakedify.harness import FakeDifyProcess
from tests.fakedify.helpers import AUTH, concurrent_calls, post


def test_stats_count_calls_statuses_faults_and_modes(fake: FakeDifyProcess) -> None:
    post(fake, "workflow", {"a": 1})
    post(fake, "chat", {"a": 1})
    post(fake, "completion", {"_fault": "server_error"})
    stats = fake.stats()
    assert stats["calls"] == 3
    assert stats["succeeded"] == 2
    assert stats["status_counts"] == {"200": 2, "500": 1}
    assert stats["faults"] == {"server_error": 1}
    assert stats["by_mode"] == {"workflow": 1, "chat": 1, "completion": 1}


def test_a_repeated_successful_input_counts_as_paid_twice(fake: FakeDifyProcess) -> None:
    for inputs in ({"a": 1}, {"a": 1}, {"a": 1}, {"a": 2}, {"b": 1, "_fault": "server_error"}):
        post(fake, "workflow", inputs)
    stats = fake.stats()
    assert (stats["rows_paid_twice"], stats["duplicate_successes"]) == (1, 2)


def test_max_in_flight_counts_concurrent_calls(fake: FakeDifyProcess) -> None:
    assert concurrent_calls(fake, 20, 300) == [200] * 20
    stats = fake.stats()
    assert (stats["max_in_flight"], stats["in_flight"], stats["succeeded"]) == (20, 0, 20)


def test_reset_forgets_runs_and_zeroes_stats(fake: FakeDifyProcess) -> None:
    run_id = post(fake, "workflow", {"a": 1}).json()["workflow_run_id"]
    fake.reset()
    assert fake.stats()["calls"] == 0
    assert httpx.get(f"{fake.url}/workflows/run/{run_id}", headers=AUTH).status_code == 404
