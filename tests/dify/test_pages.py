"""The calls a person waits for (batches.dify.pages): an app's input variables, read quietly whatever the app
answers, and the upstream circuit's health check."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import pytest
from aiohttp import web

from batches.dify.answers import parse_input_form
from batches.dify.pages import Health, check_health, fetch_parameters
from batches.dify.types import InputVariable
from fakedify.harness import FakeDifyProcess, free_port, running_fake_dify
from tests.dify.support import app_for
from tests.dify.upstreams import Handler, answer, assert_no_key, upstream

# ----------------------------------------------------------------------------------------------- parameters


def test_fetch_parameters_reads_the_apps_variables() -> None:
    with running_fake_dify("--variables", "text:Text:required,lang:Language,notes::paragraph") as fake:
        variables = fetch_parameters(app_for(fake))
    assert variables == [
        InputVariable("text", "Text", required=True, max_length=256, default=""),
        InputVariable("lang", "Language", max_length=256, default=""),
        InputVariable("notes", "notes", type="paragraph", max_length=256, default=""),
    ]


def test_fetch_parameters_returns_none_when_the_app_is_unreachable() -> None:
    assert fetch_parameters(app_for(f"http://127.0.0.1:{free_port()}/v1"), timeout=1) is None


def test_parse_input_form_reads_every_item_type() -> None:
    form = [
        {"text-input": {"variable": "a", "label": "A", "required": True, "max_length": 48}},
        {"paragraph": {"variable": "b", "label": "B"}},
        {"select": {"variable": "c", "label": "C", "options": ["x", "y"]}},
        {"number": {"variable": "d", "label": "D"}},
        {"file": {"variable": "e", "label": "E"}},
        {"file-list": {"variable": "f", "label": "F"}},
        {"checkbox": {"variable": "g", "label": "G"}},
        {"json_object": {"variable": "h", "label": "H"}},
        {"external_data_tool": {"type": "api"}},
        "junk",
    ]
    variables = parse_input_form(form)
    assert [(v.variable, v.type) for v in variables] == [
        ("a", "text-input"),
        ("b", "paragraph"),
        ("c", "select"),
        ("d", "number"),
        ("e", "file"),
        ("f", "file-list"),
        ("g", "checkbox"),
        ("h", "json_object"),
    ]
    assert variables[0].required and variables[0].max_length == 48
    assert variables[2].options == ("x", "y")


# ----------------------------------------------------------------------------------------------- health check


@pytest.mark.parametrize(
    ("outage", "expected"),
    [
        (None, Health(True, "HTTP 200: Dify answers")),
        ("bad_gateway", Health(False, "HTTP 502 upstream_error")),
        ("server_error", Health(False, "HTTP 500 upstream_error")),
        ("hang", Health(False, "timeout: the upstream did not answer in time")),
    ],
)
def test_the_health_check_says_up_only_for_difys_own_answer(fake: FakeDifyProcess, outage, expected) -> None:
    fake.configure(outage=outage)

    assert check_health(app_for(fake), timeout=0.5) == expected
    assert fake.stats()["parameters_calls"] == 1


def test_the_health_check_counts_difys_refusal_of_the_key_as_an_answer(fake: FakeDifyProcess) -> None:
    health = check_health(replace(app_for(fake), api_key="app-revoked-key"), timeout=2)

    assert health == Health(True, "HTTP 401 auth: Dify answers")


def test_the_health_check_of_a_closed_port_says_down() -> None:
    health = check_health(app_for(f"http://127.0.0.1:{free_port()}/v1"), timeout=1)

    assert not health.up
    assert health.answer.startswith("connection")


async def trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"user_input_form": [')
    while True:
        await response.write(b" ")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "handler",
    [
        answer(b"[" * 100_000 + b"]" * 100_000),
        answer(b'{"user_input_form": "none"}'),
        answer(b'{"user_input_form": [{"text-input": {"variable": "v", "options": 5, "max_length": 1e400}}]}'),
        answer(b'{"user_input_form": [' + b'{"a": 1},' * 200_000 + b"{}]}"),
        answer(b"\xff\xfe{}"),
        answer(b"", 302, headers={"Location": "http://127.0.0.1:9/v1/parameters"}),
        trickle,
    ],
)
def test_reading_the_apps_parameters_gives_up_quietly(caplog: pytest.LogCaptureFixture, handler: Handler) -> None:
    caplog.set_level(logging.DEBUG, logger="batches")
    began = time.monotonic()
    with upstream(handler) as url:
        variables = fetch_parameters(app_for(url), timeout=1)

    assert variables in (None, [])
    assert time.monotonic() - began < 4
    assert_no_key(caplog.text)


def test_a_parameter_item_of_odd_types_still_reads() -> None:
    body = b'{"user_input_form": [{"select": {"variable": "v", "label": 7, "options": 5, "max_length": "9"}}]}'
    with upstream(answer(body)) as url:
        variables = fetch_parameters(app_for(url), timeout=1)

    assert variables is not None and [(v.variable, v.label, v.options) for v in variables] == [("v", "7", ())]
