"""One fake Dify for the module's tests, restored to its defaults before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakedify.harness import FakeDifyProcess, running_fake_dify


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDifyProcess]:
    with running_fake_dify("--ping-interval", "0.1") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeDifyProcess) -> FakeDifyProcess:
    server.restore()
    return server
