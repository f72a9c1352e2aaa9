"""The fake's options: the command line's TYPE=RATE and variable lists, and live changes through /_fake/config
(fakedify/options.py)."""

from __future__ import annotations

import httpx
import pytest

from fakedify.harness import FakeDifyProcess
from fakedify.options import FakeOptions, parse_faults, parse_variables


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("server_error=0.05, reset=0.02", {"server_error": 0.05, "reset": 0.02}),
        ("hang=1", {"hang": 1.0}),
    ],
)
def test_parse_faults_reads_type_rate_pairs(text: str, expected: dict[str, float]) -> None:
    assert parse_faults(text) == expected


@pytest.mark.parametrize("text", ["bogus=0.1", "server_error", "reset=2"])
def test_parse_faults_rejects_unknown_types_and_bad_rates(text: str) -> None:
    with pytest.raises(ValueError):
        parse_faults(text)


def test_parse_variables_builds_text_input_items() -> None:
    assert parse_variables("text:Text:required,lang:Language") == [
        {"text-input": {"label": "Text", "variable": "text", "required": True, "max_length": 256, "default": ""}},
        {"text-input": {"label": "Language", "variable": "lang", "required": False, "max_length": 256, "default": ""}},
    ]


def test_a_change_is_all_or_nothing() -> None:
    options = FakeOptions(latency_ms=10)

    with pytest.raises(ValueError, match="more than 1"):
        options.changed({"latency_ms": 50, "fail_rate": 0.9, "faults": "hang=0.5"})

    assert options.changed({"faults": "hang=0.5"}).faults == {"hang": 0.5}
    assert (options.latency_ms, options.faults) == (10, {})


def test_config_rejects_unknown_faults_and_rates_over_one(fake: FakeDifyProcess) -> None:
    for options in ({"faults": {"nope": 0.1}}, {"fail_rate": 0.9, "faults": {"hang": 0.5}}, {"colour": 1}):
        response = httpx.post(fake.root + "/_fake/config", json=options, timeout=5)
        assert response.status_code == 400
    assert fake.configure(latency_ms=5)["latency_ms"] == 5
