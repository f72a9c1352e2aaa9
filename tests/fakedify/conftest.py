"""One fake Dify process for the tests of this package; each test gets it back to no faults, no limits, no stats."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakedify.harness import FakeDifyProcess, running_fake_dify


@pytest.fixture(scope="package")
def server() -> Iterator[FakeDifyProcess]:
    with running_fake_dify("--ping-interval", "0.2") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeDifyProcess) -> FakeDifyProcess:
    server.restore()
    return server
