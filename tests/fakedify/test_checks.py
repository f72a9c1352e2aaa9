"""What the fake refuses before a run starts, as Dify does (fakedify/checks.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fakedify.harness import FakeDifyProcess, running_fake_dify
from tests.fakedify.helpers import AUTH, PATHS, body_for, post


def test_missing_api_key_is_refused(fake: FakeDifyProcess) -> None:
    response = httpx.post(fake.url + "/workflows/run", json=body_for("workflow", {}), timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_a_revoked_key_is_refused_and_any_other_key_accepted(fake: FakeDifyProcess) -> None:
    revoked = {"Authorization": "Bearer app-revoked-1"}
    other = {"Authorization": "Bearer anything"}

    refused = httpx.get(fake.url + "/parameters", headers=revoked, timeout=5)
    accepted = httpx.get(fake.url + "/parameters", headers=other, timeout=5)

    assert (refused.status_code, accepted.status_code) == (401, 200)


@pytest.mark.parametrize(
    ("mode", "body"),
    [
        ("workflow", {"response_mode": "blocking", "user": "u"}),
        ("workflow", {"inputs": {}, "response_mode": "blocking"}),
        ("chat", {"inputs": {}, "response_mode": "blocking", "user": "u"}),
        ("workflow", {"inputs": {"_fault": "no_such_fault"}, "user": "u"}),
    ],
)
def test_requests_dify_would_refuse_get_invalid_param(fake: FakeDifyProcess, mode: str, body: dict[str, Any]) -> None:
    response = httpx.post(fake.url + PATHS[mode], json=body, headers=AUTH, timeout=5)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_param")


def test_a_body_that_is_not_json_is_invalid_param(fake: FakeDifyProcess) -> None:
    response = httpx.post(fake.url + "/workflows/run", content=b"[1, 2", headers=AUTH, timeout=5)

    assert (response.status_code, response.json()["message"]) == (400, "the body must be JSON")


def test_declared_variables_are_checked_as_dify_checks_them() -> None:
    with running_fake_dify("--variables", "text:Text:required,age:Age:number") as fake:
        missing = post(fake, "workflow", {"age": 3}).json()["message"]
        not_a_number = post(fake, "workflow", {"text": "x", "age": "old"}).json()["message"]
        fine = post(fake, "workflow", {"text": "x", "age": "3.5"}).status_code

    assert missing == "text is required in input form"
    assert not_a_number == "age in input form must be a valid number"
    assert fine == 200
