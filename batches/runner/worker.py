"""The code a django-q2 worker runs: one runner slice.

The calling thread owns every database write (claims, run ids, results, lease renewals); a private thread runs
an asyncio loop with one Dify client that keeps up to BATCHES_RUNNER_CAPACITY calls in flight. The two talk
through a queue, so no lock or transaction is ever held while a call is on the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection

from batches.cluster import nodes
from batches.cluster.hooks import stop_marker
from batches.conf import settings
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings
from batches.models import BatchTask
from batches.runner import row_call
from batches.runner.backlog import WRITE_WHEN_QUIET, ResultBacklog
from batches.runner.call_loop import CallLoop
from batches.runner.pacer import Pacer
from batches.runner.upstream_checks import UpstreamChecks
from batches.services import claims, leases, transitions, upstream_health
from batches.services.workflows import DifyMoved, app_settings

logger = logging.getLogger(__name__)
RECORD_CHUNK = 500  # claims stop for a write once this many results wait; the most events taken in at once
DEAD_OWNERS_EVERY = 2.0  # seconds between looks for rows held by this machine's dead processes
Event = tuple[str, leases.Claim, Any]


def runner_owner() -> str:
    # The parent pid is the django-q2 sentinel's: a stopping cluster finds its runners by it.
    return nodes.owner_name(parent_pid=os.getppid(), pid=os.getpid())


@dataclass
class Runner:
    owner: str = field(default_factory=runner_owner)
    capacity: int = field(default_factory=lambda: settings.BATCHES_RUNNER_CAPACITY)
    events: queue.Queue[Event] = field(default_factory=queue.Queue)
    in_flight: int = 0
    next_claim: int = 0  # round-robin start among batches
    freed: bool = True  # a call ended since the last claim round
    stopping: bool = False  # the cluster is stopping: hand the rows back now
    batches: list[BatchTask] = field(default_factory=list)
    to_finish: set[int] = field(default_factory=set)
    unsaved_starts: dict[int, leases.Claim] = field(default_factory=dict)  # run ids not yet written
    runners: int = 1  # runners at work, to share each batch's concurrency between them
    mine: Counter[int] = field(default_factory=Counter)  # calls in flight per batch
    dead_owners: list[str] = field(default_factory=list)  # this machine's processes that died holding rows
    renew_first: bool = False  # the database was away: renew the leases before claiming anything
    marker: Path = field(default_factory=lambda: stop_marker(os.getppid()))  # this cluster run's stop marker
    clock: Callable[[], float] = time.monotonic  # paces the chores and polls; a test scripts it
    checks: UpstreamChecks = field(default_factory=UpstreamChecks)  # the upstream health checks it sends
    backlog: ResultBacklog = field(init=False)  # results not yet written
    pacer: Pacer = field(init=False)  # when each periodic chore is next due

    def __post_init__(self) -> None:
        self.backlog, self.pacer = ResultBacklog(self.clock), Pacer(self.clock)

    def run(self, seconds: float, slot: int | None = None) -> int:
        """Claim for `seconds`, then let the calls in flight finish. Returns how many results were recorded."""
        calls, recorded = CallLoop(), 0
        deadline = self.clock() + seconds
        try:
            while not self.cluster_stopping():
                claiming = self.clock() < deadline
                if self.renew_first:
                    self.db_step(self.renew_after_outage)
                if self.backlog.failed():  # a pause or a 429 must land before claims
                    recorded += self.write_backlog()
                # Otherwise successors first: the rows that ended are written while the new calls are under way.
                got = self.claim_successors(calls) if claiming and not self.renew_first else 0
                if self.write_due(claiming):
                    if got:
                        calls.settle()
                    recorded += self.write_backlog()
                self.db_step(self.chores, slot, calls)
                idle = not self.in_flight and not self.backlog and not self.checks.sending
                if idle and (not claiming or self.out_of_work(got)):
                    break
                self.absorb(self.wait_for_events(got or 0), calls)
            if self.stopping:
                self.hand_back(calls)
        finally:
            calls.close()
            self.db_step(transitions.finish_done, self.to_finish)
        return recorded

    def cluster_stopping(self) -> bool:
        if not self.stopping and self.marker.exists():
            logger.info("runner %s: the cluster is stopping, handing its rows back", self.owner)
            self.stopping = True
        return self.stopping

    def db_step(self, step: Any, *args: Any) -> Any:
        """Run one database step; if the database is away, keep going with the calls and try again later.

        Only connection-class errors are an outage. Any other database error is a bug or a bad value: it is
        logged with its traceback, not retried in silence (the backlog records such a row's result as failed).
        """
        try:
            return step(*args)
        except (OperationalError, InterfaceError) as exc:
            logger.warning("database unavailable (%s); the runner keeps its calls going", exc)
            self.renew_first = True
            connection.close()
            time.sleep(1)
            return None
        except DatabaseError:
            logger.exception("database error in %s", getattr(step, "__name__", step))
            time.sleep(1)  # a bug repeats: one traceback a second, not a flood
            return None

    def renew_after_outage(self) -> None:
        """Before anything else once the database is back: leases may have expired while it was away."""
        self.renew_first = False
        leases.renew_leases(self.owner)
        self.pacer.due_now("renew")

    def out_of_work(self, got: int | None) -> bool:
        return not got and not self.db_step(claims.has_work)

    def claim_due(self) -> bool:
        # Without a freed call there is only room if someone else's rows ended: look now and then.
        return self.freed or self.pacer.every("poll", settings.BATCHES_POLL_INTERVAL)

    def chores(self, slot: int | None, calls: CallLoop | None = None) -> None:
        if self.unsaved_starts and self.pacer.every("run ids", 0.2):
            self.flush_run_ids()
        if self.pacer.every("renew", settings.BATCHES_LEASE_SECONDS / 3):
            leases.renew_leases(self.owner)
        if slot is not None and self.pacer.every("slot", 1.0):
            claims.renew_slot(slot, owner=self.owner)
        if calls is not None and self.in_flight and self.pacer.every("cancelled", 1.0):
            self.stop_lost_calls(calls)
        if self.to_finish and self.pacer.every("finish", 1.0):
            transitions.finish_done(self.to_finish)
            self.to_finish.clear()
        if calls is not None and self.batches and self.pacer.every("probes", settings.BATCHES_POLL_INTERVAL):
            self.checks.start(self.owner, calls, self.batches, self.app_for)
        if self.checks.sending:
            self.checks.record(self.owner)

    def flush_run_ids(self) -> None:
        # Soon, in one statement: recovery can only ask Dify about runs whose ids were written.
        leases.store_run_ids(list(self.unsaved_starts.values()))
        self.unsaved_starts.clear()

    def stop_lost_calls(self, calls: CallLoop) -> None:
        """Calls whose row is no longer ours (cancelled by staff) are stopped, upstream too, to save the spend."""
        for claim, app in calls.abandon(leases.lost_claims(self.owner, execution_ids=list(calls.calls))):
            if claim.task_id and app.response_mode == "streaming":
                calls.send(calls.client.stop(app, claim.task_id, user=row_call.user_for(claim)))

    def claim_successors(self, calls: CallLoop) -> int:
        """Claim for the calls that ended, then again for those that ended meanwhile, before writing any result:
        a wave's results reach this thread over tens of milliseconds, and a write of them takes as long."""
        got = 0
        while self.claim_due() and len(self.backlog) < RECORD_CHUNK and not self.backlog.failed():
            started = self.db_step(self.claim_and_start, calls)
            if started is None:  # the database is away
                break
            got += started
            self.absorb(self.drain(), calls)
        return got

    def write_due(self, claiming: bool) -> bool:
        """Whether the results are due to be written (ResultBacklog.write_due); a result that stops the batch (a
        pause, a 429) is written before any claim instead (run)."""
        return self.backlog.write_due(more_coming=claiming and bool(self.in_flight) and not self.stopping)

    def claim_and_start(self, calls: CallLoop) -> int:
        room = self.capacity - self.in_flight
        if room <= 0:
            self.freed = False
            return 0
        if self.pacer.every("batches", 1.0) or not self.batches:
            self.batches = claims.runnable_batches()
        if self.pacer.every("runners", 1.0):
            self.runners = max(1, claims.active_runners())
        if self.pacer.every("dead owners", DEAD_OWNERS_EVERY):
            self.dead_owners = nodes.dead_local_owners()
        started = 0
        for offset in range(len(self.batches)):
            batch = self.batches[(self.next_claim + offset) % len(self.batches)]
            started += self.claim_batch(calls, batch, room - started)
        self.next_claim += 1
        self.freed = False  # only now: a round the database cut short is claimed again at once, not at the poll
        return started

    def claim_batch(self, calls: CallLoop, batch: BatchTask, room: int) -> int:
        ended = self.backlog.ended(batch.pk)
        # Every place this runner's calls freed is refilled, even past its share: no other runner would know of
        # it before its next poll. The share bounds only the places it takes beyond those.
        refills = min(room, len(ended))
        beyond = min(room, max(self.fair_share(batch), len(ended))) - refills
        if refills + beyond <= 0:
            return 0
        if refills and beyond and not self.pacer.every(f"beyond {batch.pk}", settings.BATCHES_POLL_INTERVAL):
            # Alongside refills, once a poll interval: the others refill their own places, so a free one is rare (a
            # runner gone, the concurrency raised), and looking for it takes the batch row's exclusive lock.
            beyond = 0
        app = self.app_for(batch)
        if app is None:
            return 0
        take_over = self.pacer.every(f"take over {batch.pk}", settings.BATCHES_POLL_INTERVAL)
        started = 0
        for limit, marks in ((refills, ended), (beyond, [])):
            if limit > 0:
                owner, dead_owners = self.owner, self.dead_owners
                claimed = claims.claim(
                    batch.pk, owner=owner, limit=limit, take_over=take_over, ended=marks, dead_owners=dead_owners
                )
                self.backlog.mark(marks)
                started += self.start_calls(calls, batch, app, claimed)
                take_over = False
        return started

    def start_calls(self, calls: CallLoop, batch: BatchTask, app: AppSettings, claimed: list[leases.Claim]) -> int:
        for claim in claimed:
            calls.start(claim, app, self.call(calls.client, app, claim))
            self.mine[batch.pk] += 1
            # Counted as each call starts: a failed claim of a later batch must not lose these.
            self.in_flight += 1
        return len(claimed)

    def fair_share(self, batch: BatchTask) -> int:
        """Spread a batch over the runners at work, so a wave of results is recorded by several processes."""
        return -(-batch.concurrency // self.runners) - self.mine[batch.pk]

    def app_for(self, batch: BatchTask) -> AppSettings | None:
        """The batch's settings and key, read on every claim round (a corrected key takes effect at once); None,
        and the batch paused, when its workflow's Dify moved: the key was entered for another place."""
        try:
            return app_settings(batch.workflow, config=batch.config)
        except DifyMoved as moved:
            transitions.pause(batch.pk, reason=str(moved))
            return None

    async def call(self, client: DifyClient, app: AppSettings, claim: leases.Claim) -> None:
        """Runs on the calls' thread; its events come back through the queue."""
        await row_call.call(client, app, claim, owner=self.owner, events=self.events)

    def wait_for_events(self, just_started: int) -> list[Event]:
        timeout = 0.05 if just_started else settings.BATCHES_POLL_INTERVAL
        if self.backlog:
            timeout = min(timeout, WRITE_WHEN_QUIET)
        if not self.in_flight:
            time.sleep(0 if self.backlog else timeout)
            return []
        events = []
        try:
            events.append(self.events.get(timeout=timeout))
            while len(events) < RECORD_CHUNK:
                events.append(self.events.get_nowait())
        except queue.Empty:
            pass
        return events

    def absorb(self, events: list[Event], calls: CallLoop) -> None:
        for kind, claim, payload in events:
            if kind == "started":
                run_id, claim.task_id = payload
                claim.run_id = run_id or claim.run_id  # a message stream names no run: keep the row's latest
                self.unsaved_starts[claim.execution_id] = claim
            elif kind == "errand":  # a call's question about its files' uploads (batches/runner/row_call.py)
                payload()
            else:
                self.unsaved_starts.pop(claim.execution_id, None)
                calls.forget(claim.execution_id)
                self.backlog.add(claim, payload)
                self.in_flight -= 1
                self.mine[claim.batch_id] -= 1
                self.freed = True

    def write_backlog(self) -> int:
        if not self.backlog:
            return 0
        recorded = self.db_step(self.backlog.write)
        if recorded is None:  # the database is away: the backlog keeps the results, to try again later
            return 0
        self.to_finish |= recorded.batch_ids
        return int(recorded.written)

    def hand_back(self, calls: CallLoop) -> None:
        """A stopping cluster: give the rows back now rather than when their leases expire.

        Nothing already known is dropped: results that came in are written (not handed back to be paid again),
        and every announced run id is stored, so the next claimer asks Dify how those runs ended.
        """
        cancelled = calls.cancel_all()
        # A call that ended before it could be cancelled has its result in the queue already.
        known = [event for event in self.drain() if not (event[0] == "done" and event[1].execution_id in cancelled)]
        self.absorb(known, calls)
        if self.unsaved_starts:
            self.db_step(self.flush_run_ids)
        self.write_backlog()
        released = self.db_step(leases.release_claims, self.owner)
        self.db_step(upstream_health.release_probes, self.owner)
        logger.info("runner %s handed back %s rows", self.owner, released)

    def drain(self) -> list[Event]:
        events = []
        with contextlib.suppress(queue.Empty):
            while True:
                events.append(self.events.get_nowait())
        return events


def run_slice() -> str:
    """One runner slice, within a runner slot; hands over to a fresh wake-up if work is left."""
    # The calls' thread and this one share the GIL: switch sooner, so a finished call's row is recorded sooner.
    sys.setswitchinterval(0.001)
    runner = Runner()
    if runner.cluster_stopping():
        return "the cluster is stopping"
    slot = claims.acquire_slot(runner.owner)
    if slot is None:
        return "every runner slot is taken"
    try:
        recorded = runner.run(settings.BATCHES_RUNNER_SLICE, slot)
    finally:
        claims.release_slot(slot, owner=runner.owner)
        close_old_connections()
    # Released before this check, so a wake-up refused a slot meanwhile is never left stranded.
    if not runner.stopping and claims.has_work():
        claims.wake_runners()
    return f"recorded {recorded} results"
