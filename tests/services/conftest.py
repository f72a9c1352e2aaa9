"""Fixtures shared by the services' tests."""

import pytest

from batches.choices import BatchStatus


@pytest.fixture
def running_batch(make_batch):
    return make_batch(rows=5, status=BatchStatus.RUNNING, concurrency=2)


@pytest.fixture
def workflow(make_workflow, fake):
    """A blocking workflow on the file inputs' fake Dify (tests/conftest.py), restored to its defaults."""
    fake.restore()
    return make_workflow(base_url=fake.url, response_mode="blocking")
