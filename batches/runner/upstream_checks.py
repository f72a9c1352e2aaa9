"""The upstream health checks one runner sends: `GET /parameters` for a workflow whose circuit wants to know
whether Dify is up (services/upstream_health.py decides which are due and gives each to one runner at a time).

A check goes out on the runner's event loop like a call, never inside a transaction; its answer is recorded by the
runner's thread. The runner renews the check's lease with its row leases (services/leases.renew_leases) and waits
for its checks before its slice ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future

from batches.conf import settings
from batches.dify.pages import Health, health
from batches.dify.types import AppSettings
from batches.models import BatchTask
from batches.runner.call_loop import CallLoop
from batches.services import upstream_health

NOT_FINISHED = Health(False, "the health check did not finish")


class UpstreamChecks:
    def __init__(self) -> None:
        self.sending: dict[int, Future[Health]] = {}  # by workflow

    def start(
        self,
        owner: str,
        calls: CallLoop,
        batches: Iterable[BatchTask],
        app_for: Callable[[BatchTask], AppSettings | None],
    ) -> None:
        """Send the checks that are due for these batches' workflows and no other process is sending."""
        by_workflow = {batch.workflow_id: batch for batch in batches}
        for workflow_id in upstream_health.take_probes(
            owner=owner, workflow_ids=by_workflow.keys() - self.sending.keys()
        ):
            app = app_for(by_workflow[workflow_id])
            if app is None:  # its Dify moved (the batch pauses): the key goes nowhere; another batch's runner asks
                upstream_health.release_probes(owner, workflow_id=workflow_id)
                continue
            self.sending[workflow_id] = calls.submit(health(calls.client, app, settings.BATCHES_CIRCUIT_PROBE_TIMEOUT))

    def record(self, owner: str) -> None:
        """Record the answers that came (a check that crashed counts as no answer)."""
        for workflow_id, check in list(self.sending.items()):
            if check.done():
                del self.sending[workflow_id]
                failed = check.cancelled() or check.exception() is not None
                answer = NOT_FINISHED if failed else check.result()
                upstream_health.answered(workflow_id=workflow_id, owner=owner, health=answer)
