"""The run look-up before paying again: only Dify's own answer about the run lets the row be sent again."""

import asyncio
import json

import pytest

from batches.dify.client import DifyClient
from batches.dify.types import AppSettings
from batches.runner import reconcile
from fakedify.harness import free_port
from tests.replay import replaying

RUN_ID = "5a3c2b1e-0000-4000-8000-000000000001"


def app(url):
    return AppSettings(mode="workflow", base_url=url, api_key="app-lookup-key", timeout=5)


def look_up(url):
    async def ask():
        async with DifyClient() as client:
            return await reconcile.earlier_run(client, app(url), RUN_ID, poll_every=0.01)

    return asyncio.run(ask())


def answer(status, body, content_type="application/json"):
    return {"status": status, "headers": {"Content-Type": content_type}, "body_chunks": [body]}


def run_detail(status):
    data = {"id": RUN_ID, "status": status, "outputs": {}, "error": "boom", "created_at": 2_000_000_000}
    return answer(200, json.dumps(data))


def test_a_refused_look_up_is_the_tries_failure_and_keeps_the_run_id():
    found = look_up(f"http://127.0.0.1:{free_port()}/v1")

    assert found is not None and not found.ok
    assert (found.error_type, found.workflow_run_id) == ("connection", RUN_ID)


@pytest.mark.parametrize(
    ("case", "error_type"),
    [
        (answer(502, "<html><body>502 Bad Gateway</body></html>", "text/html"), "upstream_error"),
        (answer(429, json.dumps({"code": "too_many_requests", "message": "slow down", "status": 429})), "rate_limited"),
        (answer(200, "<html>a login page</html>", "text/html"), "bad_response"),
    ],
    ids=["gateway_502", "rate_limited", "html_200"],
)
def test_a_look_up_that_dify_did_not_answer_fails_the_try(case, error_type):
    with replaying(case, 0.01) as (url, _):
        found = look_up(url)

    assert found is not None and not found.ok
    assert (found.error_type, found.workflow_run_id) == (error_type, RUN_ID)


@pytest.mark.parametrize(
    "case",
    [
        answer(404, json.dumps({"code": "not_found", "message": "Workflow run not found.", "status": 404})),
        run_detail("failed"),
        run_detail("stopped"),
    ],
    ids=["not_found", "failed", "stopped"],
)
def test_only_dify_saying_the_run_ended_without_success_sends_the_row_again(case):
    with replaying(case, 0.01) as (url, _):
        assert look_up(url) is None
