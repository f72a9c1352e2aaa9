"""Before paying for a row again, ask Dify how its earlier run ended.

A run whose client went away (a worker killed mid-call, a call that timed out, a stream cut short) usually goes on
and finishes inside Dify: a stream abandoned after 3 s was seen to end `succeeded` at 70 s. Recovery and automatic
retries therefore look the earlier run up (GET /workflows/run/{id}) and record its result when it succeeded.

A run Dify stops (from its console, or past its APP_MAX_EXECUTION_TIME) stays `running` in that answer for ever,
so a run older than BATCHES_DIFY_MAX_EXECUTION_TIME is not waited for: the row runs again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings

from batches.choices import ErrorType
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings, CallResult

logger = logging.getLogger(__name__)
# Error types after which the earlier run may still be going on (or have finished) inside Dify.
RESUMABLE_ERRORS = frozenset({ErrorType.TIMEOUT, ErrorType.BAD_RESPONSE, ErrorType.CONNECTION, ErrorType.INTERRUPTED})


def resumable(error_type: str, run_id: str) -> bool:
    """Whether an automatic retry should look up the earlier run first (its id is known, the call was cut)."""
    return bool(run_id) and error_type in RESUMABLE_ERRORS


async def earlier_run(
    client: DifyClient,
    app: AppSettings,
    run_id: str,
    *,
    poll_every: float = 2.0,
    max_age: float | None = None,
) -> CallResult | None:
    """The earlier run's result when it succeeded; None when the row must run again.

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
        if found.upstream_status != "running" or _too_old(found, max_age):
            return None
        await asyncio.sleep(poll_every)
    return None


def _too_old(found: CallResult, max_age: float) -> bool:
    """A run still `running` past Dify's own execution limit was stopped: it will never say otherwise."""
    if found.run_created_at is None:
        return False
    age = time.time() - found.run_created_at
    if age > max_age:
        logger.info("run %s is %.0f s old and still says running: not waited for", found.workflow_run_id, age)
        return True
    return False
