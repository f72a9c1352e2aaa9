"""The fake's --max-active and --rpm limits, answered as Dify answers them (fakedify/limits.py)."""

from __future__ import annotations

import httpx

from fakedify.harness import FakeDifyProcess
from tests.fakedify.helpers import AUTH, body_for, concurrent_calls, post


def test_max_active_refuses_calls_beyond_the_cap_with_a_400_too_many_requests_as_dify_does(
    fake: FakeDifyProcess,
) -> None:
    fake.configure(max_active=5)
    statuses = concurrent_calls(fake, 12, 300)
    assert statuses.count(200) == 5
    assert statuses.count(400) == 7
    fake.configure(max_active=1)
    streaming = body_for("workflow", {"_latency_ms": 300}, "streaming")
    with httpx.stream("POST", fake.url + "/workflows/run", json=streaming, headers=AUTH, timeout=5):
        refused = post(fake, "workflow", {"x": 1})
    assert refused.json()["code"] == "invalid_param"
    assert refused.json()["message"].startswith("Too many requests. Please try again later.")
    assert "Retry-After" not in refused.headers
    assert fake.stats()["limited"] == {"max_active": 8}


def test_rpm_refuses_calls_beyond_the_window_with_retry_after(fake: FakeDifyProcess) -> None:
    fake.configure(rpm=3)
    responses = [post(fake, "workflow", {"i": i}) for i in range(5)]
    assert [response.status_code for response in responses] == [200, 200, 200, 429, 429]
    assert responses[3].json()["code"] == "rate_limit_error"
    assert 1 <= int(responses[3].headers["Retry-After"]) <= 60
