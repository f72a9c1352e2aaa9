"""Run again (views.rerun): who may start the new batch at once."""

from __future__ import annotations

import pytest

from batches.models import BatchTask
from tests.views.helpers import ADD, CONTROL, S, url


@pytest.mark.parametrize(("perms", "status"), [((ADD,), S.PENDING), ((ADD, CONTROL), S.RUNNING)])
def test_run_again_starts_at_once_only_with_the_control_permission(login, failed_batch, perms, status):
    client = login(*perms)
    data = {"only": "all", "workflow": failed_batch.workflow_id, "max_retries": 2, "start": "on"}

    page = client.get(url("batch_rerun", failed_batch.pk)).content.decode()
    response = client.post(url("batch_rerun", failed_batch.pk), data)

    assert response.status_code == 302
    assert BatchTask.objects.exclude(pk=failed_batch.pk).get().status == status
    assert ('name="start"' in page) is (CONTROL in perms)
