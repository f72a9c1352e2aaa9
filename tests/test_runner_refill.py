"""The runner's claim loop refills every freed place at once, on every runner (issue 18).

Several runners share one batch, as the processes of a cluster do. Their calls never go on the network (a
scripted call loop records what was started), and their clock is scripted and stands still: no poll comes to the
rescue, so whatever a round does not claim stays unclaimed.
"""

from __future__ import annotations

from typing import Any

import pytest

from batches import conf
from batches.choices import BatchStatus
from batches.dify.types import CallResult
from batches.models import Execution
from batches.runner.backlog import WRITE_WHEN_QUIET, WRITE_WITHIN
from batches.runner.worker import Runner
from batches.services import claims, leases


class ScriptedCalls:
    """Stands in for CallLoop: records the calls the runner starts; none of them runs."""

    client = None

    def __init__(self) -> None:
        self.calls: dict[int, leases.Claim] = {}

    def start(self, claim: leases.Claim, app: Any, coro: Any) -> None:
        coro.close()
        self.calls[claim.execution_id] = claim

    def forget(self, execution_id: int) -> None:
        self.calls.pop(execution_id, None)


class Cluster:
    """Runners of one cluster, each with its scripted calls, all on one clock that moves only when told."""

    def __init__(self, count: int) -> None:
        self.now = 1_000.0
        self.runners = [Runner(owner=f"runner-{n}", clock=lambda: self.now) for n in range(count)]
        self.calls = [ScriptedCalls() for _ in self.runners]
        for runner in self.runners:
            assert claims.acquire_slot(runner.owner) is not None  # so each knows how many share the batch

    def end_calls(self, counts: list[int]) -> None:
        """A burst: `counts[n]` of runner n's calls end at once (their results are queued, as the call loop does)."""
        for runner, calls, count in zip(self.runners, self.calls, counts, strict=True):
            for claim in list(calls.calls.values())[:count]:
                runner.events.put(("done", claim, CallResult(ok=True, outputs={"answer": "x"})))

    def claim_round(self) -> list[int]:
        """One round of every runner's loop, in the worst order concurrent runners can take: every runner takes
        in what ended and claims before any of them has written its results."""
        for runner, calls in zip(self.runners, self.calls, strict=True):
            runner.absorb(runner.wait_for_events(0), calls)
        claimed = [runner.claim_successors(calls) for runner, calls in zip(self.runners, self.calls, strict=True)]
        for runner in self.runners:
            runner.write_backlog()
        return claimed


@pytest.fixture
def cluster(settings: Any) -> Cluster:
    settings.BATCHES_RUNNERS = 3
    return Cluster(3)


@pytest.mark.parametrize("burst", [[4, 4, 4], [4, 2, 3], [0, 4, 1]])
def test_calls_ending_in_one_burst_across_runners_get_their_successors_in_the_next_round(
    make_batch: Any, cluster: Cluster, burst: list[int]
) -> None:
    batch = make_batch(rows=60, status=BatchStatus.RUNNING, concurrency=12)
    assert cluster.claim_round() == [4, 4, 4]  # each runner takes its share of the concurrency

    cluster.end_calls(burst)
    claimed = cluster.claim_round()

    assert claimed == burst
    assert Execution.objects.filter(batch=batch).running().count() == 12
    assert Execution.objects.filter(batch=batch, status="succeeded").count() == sum(burst)


def test_calls_that_end_while_a_runner_claims_get_their_successors_before_any_result_is_written(
    make_batch: Any, cluster: Cluster, monkeypatch: Any
) -> None:
    batch = make_batch(rows=60, status=BatchStatus.RUNNING, concurrency=12)
    cluster.claim_round()
    runner, calls = cluster.runners[0], cluster.calls[0]
    first, *rest = list(calls.calls.values())
    runner.events.put(("done", first, CallResult(ok=True, outputs={})))
    runner.absorb(runner.wait_for_events(0), calls)
    real_claim = claims.claim

    def claim_while_another_call_ends(*args: Any, **kwargs: Any) -> list[leases.Claim]:
        if rest:  # the wave goes on ending while this claim is in the database
            runner.events.put(("done", rest.pop(), CallResult(ok=True, outputs={})))
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(claims, "claim", claim_while_another_call_ends)
    claimed = runner.claim_successors(calls)

    assert claimed == 4
    assert len(runner.backlog) == 4  # none written yet: the successors went first
    in_flight = Execution.objects.filter(batch=batch).running().filter(not_before__isnull=True)
    assert in_flight.count() == 12


def test_a_runner_past_its_share_refills_every_place_its_calls_freed(make_batch: Any, settings: Any) -> None:
    settings.BATCHES_RUNNERS = 2
    make_batch(rows=60, status=BatchStatus.RUNNING, concurrency=8)
    cluster = Cluster(2)
    first, late = cluster.runners
    first.pacer.due["runners"] = cluster.now + 60  # it claimed before the other came: the whole batch was its share
    assert cluster.claim_round() == [8, 0]
    first.runners = 2  # now its share is 4

    cluster.end_calls([8, 0])

    assert cluster.claim_round() == [8, 0]  # the other runner would not look before its next poll


def test_a_runner_below_its_share_looks_beyond_its_freed_places_only_at_its_poll(
    make_batch: Any, settings: Any, monkeypatch: Any
) -> None:
    settings.BATCHES_RUNNERS = 2
    make_batch(rows=60, status=BatchStatus.RUNNING, concurrency=8)
    cluster = Cluster(2)
    greedy, below = cluster.runners
    greedy.pacer.due["runners"] = cluster.now + 60  # it claimed before the other came: it holds 6, the other 2
    greedy.capacity = 6
    assert cluster.claim_round() == [6, 2]
    asked: list[tuple[int, int]] = []  # (limit, ended) of each claim of the runner below its share
    real_claim = claims.claim

    def claim(*args: Any, **kwargs: Any) -> list[leases.Claim]:
        if kwargs["owner"] == below.owner:
            asked.append((kwargs["limit"], len(kwargs["ended"])))
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(claims, "claim", claim)
    rounds = []
    for _ in range(2):
        cluster.end_calls([0, 1])
        rounds.append(cluster.claim_round())
    cluster.now += conf.settings.BATCHES_POLL_INTERVAL
    cluster.end_calls([0, 1])
    rounds.append(cluster.claim_round())

    assert rounds == [[0, 1]] * 3  # every freed place refilled; the batch is full beyond them
    # Beyond its own places (2 more, to its share of 4) it looks alongside its refills once a poll interval (and at
    # its poll, which claims without refills): the others refill theirs, and a look takes the exclusive lock.
    assert asked == [(1, 1), (2, 0), (1, 1), (1, 1), (2, 0), (2, 0)]


def ended_call(runner: Runner, calls: ScriptedCalls, execution_id: int) -> None:
    claim = leases.Claim(execution_id, 1, 1, execution_id, {}, "token", 1, "auto", 0, 2, True)
    runner.in_flight += 1
    runner.events.put(("done", claim, CallResult(ok=True, outputs={"answer": "x"})))
    runner.absorb(runner.drain(), calls)


def test_results_wait_while_calls_keep_ending_and_are_written_once_they_stop(db: None) -> None:
    now = [1_000.0]
    runner, calls = Runner(owner="runner-0", clock=lambda: now[0]), ScriptedCalls()
    runner.in_flight = 5  # calls still out
    ended_call(runner, calls, 1)

    waiting = runner.write_due(claiming=True)
    now[0] += WRITE_WHEN_QUIET + 0.001

    assert (waiting, runner.write_due(claiming=True)) == (False, True)


def test_results_are_written_within_a_bound_while_calls_never_stop_ending(db: None) -> None:
    now = [1_000.0]
    runner, calls = Runner(owner="runner-0", clock=lambda: now[0]), ScriptedCalls()
    runner.in_flight = 100
    first_end, written_at = now[0], None
    for n in range(1, 60):
        ended_call(runner, calls, n)
        if runner.write_due(claiming=True):
            written_at = now[0]
            break
        now[0] += WRITE_WHEN_QUIET / 2  # never quiet for long enough

    assert written_at is not None
    assert WRITE_WITHIN <= written_at - first_end < WRITE_WITHIN + WRITE_WHEN_QUIET / 2


@pytest.mark.parametrize(("claiming", "in_flight", "stopping"), [(False, 5, False), (True, 0, False), (True, 5, True)])
def test_results_are_written_at_once_when_nothing_more_is_coming(
    db: None, claiming: bool, in_flight: int, stopping: bool
) -> None:
    runner, calls = Runner(owner="runner-0", clock=lambda: 1_000.0), ScriptedCalls()
    runner.in_flight = in_flight
    ended_call(runner, calls, 1)
    runner.stopping = stopping

    assert runner.write_due(claiming=claiming)
