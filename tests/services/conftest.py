"""Fixtures shared by the services' tests."""

import pytest

from batches.choices import BatchStatus


@pytest.fixture
def running_batch(make_batch):
    return make_batch(rows=5, status=BatchStatus.RUNNING, concurrency=2)
