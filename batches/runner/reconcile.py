"""Before paying for a row again, ask Dify how its earlier run ended.

A run whose client went away (a worker killed mid-call, a call that timed out, a stream cut short) usually goes on
and finishes inside Dify: a stream abandoned after 3 s was seen to end `succeeded` at 70 s. Recovery and automatic
retries therefore look the earlier run up (GET /workflows/run/{id}) and record its result when it succeeded.

A run Dify stops (from its console, or past its APP_MAX_EXECUTION_TIME) stays `running` in that answer for ever,
so a run older than BATCHES_DIFY_MAX_EXECUTION_TIME is not waited for: the row runs again.

Only Dify's own answer about the run (404, `failed`, `stopped`, too old) lets the row be sent again. A look-up that
got no such answer (refused, a timeout, a gateway's 5xx, a 429) is the try's failure, with the look-up's error type
and the run id, so the row keeps it and the next try asks again: paying again then could pay twice for a run that
finished while Dify was away. The row keeps its latest run id until a newer call announces its own
(services/results.py), and every try looks that run up first unless its end was seen (choices.RUN_ENDED_ERRORS,
services/claims.py: `resumable`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from batches.conf import settings
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings, CallResult

logger = logging.getLogger(__name__)
# Answers in which Dify speaks about the run itself (`running` is polled, `succeeded` recorded).
ANSWERED_STATUSES = frozenset({"failed", "stopped", "paused", "running", "succeeded", "partial-succeeded"})


async def earlier_run(
    client: DifyClient,
    app: AppSettings,
    run_id: str,
    *,
    poll_every: float = 2.0,
    max_age: float | None = None,
) -> CallResult | None:
    """What decides this try: the earlier run's result when it succeeded, the look-up's failure when Dify did not
    answer about the run; None when Dify's answer says the row must run again.

    Polls a `running` run until the call's own time limit, or until the run is older than Dify's execution limit.
    """
    if not run_id or app.mode != "workflow":
        return None
    max_age = settings.BATCHES_DIFY_MAX_EXECUTION_TIME if max_age is None else max_age
    deadline = time.monotonic() + app.timeout
    while time.monotonic() < deadline:
        found = await client.get_workflow_run(app, run_id)
        if found.ok:
            logger.info("run %s had finished in Dify: its result is recorded, not paid again", run_id)
            return found
        if not _answered(found):
            logger.info(
                "run %s could not be looked up (%s): this try fails, the run is asked about again",
                run_id,
                found.error_type,
            )
            found.error = f"looking up the earlier run: {found.error}"
            return found
        if found.upstream_status != "running" or _too_old(found, max_age):
            return None
        await asyncio.sleep(poll_every)
    return None


def _answered(found: CallResult) -> bool:
    """Dify spoke about the run: it does not know it (404), or it gave its status."""
    return found.http_status == 404 or found.upstream_status in ANSWERED_STATUSES


def _too_old(found: CallResult, max_age: float) -> bool:
    """A run still `running` past Dify's own execution limit was stopped: it will never say otherwise."""
    if found.run_created_at is None:
        return False
    age = time.time() - found.run_created_at
    if age > max_age:
        logger.info("run %s is %.0f s old and still says running: not waited for", found.workflow_run_id, age)
        return True
    return False
