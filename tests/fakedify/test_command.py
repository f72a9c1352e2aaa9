"""`manage.py fake_dify`: bad options, a port in use, and its stats on SIGTERM (fakedify/management, server.py)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from fakedify.harness import FakeDifyProcess, running_fake_dify
from tests.fakedify.helpers import post


def test_command_rejects_an_unknown_fault_type() -> None:
    with pytest.raises(CommandError, match="bad fault"):
        call_command("fake_dify", "--faults", "bogus=0.1")


def test_command_rejects_fault_rates_adding_up_to_more_than_one() -> None:
    with pytest.raises(CommandError, match="more than 1"):
        call_command("fake_dify", "--fail-rate", "0.9", "--faults", "hang=0.5")


def test_sigterm_prints_the_final_stats_and_exits_cleanly() -> None:
    with running_fake_dify("--variables", "text:Text:required") as fake:
        assert post(fake, "workflow", {"text": "x"}).status_code == 200
        assert post(fake, "workflow", {}).json()["message"] == "text is required in input form"
    assert fake.process.returncode == 0
    assert fake.final_stats is not None
    assert (fake.final_stats["calls"], fake.final_stats["succeeded"]) == (2, 1)


def test_command_refuses_a_port_in_use(server: FakeDifyProcess) -> None:
    with pytest.raises(CommandError, match="cannot listen"):
        call_command("fake_dify", "--port", str(server.port))
