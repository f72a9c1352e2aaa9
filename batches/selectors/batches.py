"""Reads for pages, commands and exports: progress of a batch (from the counts kept per batch), failures,
upstream circuits, the objects the pages open (`*_or_404`), and `iso`, the one timestamp format of our JSON.

The results page's reads are in `selectors_results`, the compare page's in `selectors_compare`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from django.db.models import Count, QuerySet, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from batches.choices import BatchStatus, CircuitState, ExecutionStatus
from batches.models import Attempt, BatchCount, BatchTask, Execution, Workflow, WorkflowThrottle

FAILURE_FIELDS = ("id", "batch", "index", "error_type", "error", "http_status", "attempt_count", "finished_at")


@dataclass
class Progress:
    total: int
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    total_tokens: int
    rate_per_minute: int  # rows finished in the last minute; for an ended batch, its average while it ran
    eta_seconds: float | None

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def ran(self) -> int:
        """Rows that ran to an end (a cancelled row did not)."""
        return self.succeeded + self.failed

    @property
    def ran_percent(self) -> int:
        return int(100 * self.ran / self.total) if self.total else 100

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100


def state_counts(batch_ids: list[int]) -> dict[int, dict[str, int]]:
    return counts_and_tokens(batch_ids)[0]


def counts_and_tokens(batch_ids: list[int]) -> tuple[dict[int, dict[str, int]], dict[int, int]]:
    """Counts per state and tokens spent, for many batches in one query over the counts the database keeps per batch
    (BatchCount, maintained by triggers in the statements that change the rows): no row of the history is read."""
    counts: dict[int, dict[str, int]] = {batch_id: dict.fromkeys(ExecutionStatus.values, 0) for batch_id in batch_ids}
    tokens = dict.fromkeys(batch_ids, 0)
    sums = {state: Sum(state) for state in ExecutionStatus.values}
    rows = BatchCount.objects.filter(batch_id__in=batch_ids).values("batch_id").order_by()
    for row in rows.annotate(**sums, spent=Sum("tokens")):
        # int(): PostgreSQL sums bigints as numeric
        counts[row["batch_id"]] = {state: int(row[state]) for state in ExecutionStatus.values}
        tokens[row["batch_id"]] = int(row["spent"])
    return counts, tokens


def batch_progress(batch: BatchTask, now: datetime | None = None) -> Progress:
    now = now or timezone.now()
    all_counts, all_tokens = counts_and_tokens([batch.pk])
    counts, tokens = all_counts[batch.pk], all_tokens[batch.pk]
    left = counts[ExecutionStatus.PENDING] + counts[ExecutionStatus.RUNNING]
    if batch.status in (BatchStatus.FINISHED, BatchStatus.CANCELLED) and batch.started_at and batch.finished_at:
        ran = counts[ExecutionStatus.SUCCEEDED] + counts[ExecutionStatus.FAILED]
        rate, eta = average_rate(batch, ran), None
    else:
        rate = live_rate(batch, now)
        eta = 60.0 * left / rate if rate and left and counting_down(batch) else None
    return Progress(total=sum(counts.values()), total_tokens=tokens, rate_per_minute=rate, eta_seconds=eta, **counts)


def live_rate(batch: BatchTask, now: datetime) -> int:
    """Rows finished in the last minute; in a run's first minute, its rows per minute so far (a minute's window
    over a run of 20 seconds would read a third of the real rate, and the time left three times too long)."""
    executions = Execution.objects.filter(batch=batch).order_by()
    stretch = (now - batch.running_since).total_seconds() if batch.running_since else None
    if stretch is None or stretch >= 60:
        return executions.filter(finished_at__gte=now - timedelta(minutes=1)).count()
    finished = executions.filter(finished_at__gte=batch.running_since).count()
    return round(60 * finished / max(stretch, 1.0))


def counting_down(batch: BatchTask) -> bool:
    """A time left means something only while the batch runs and its Dify answers."""
    throttle = getattr(batch.workflow, "throttle", None)
    return batch.status == BatchStatus.RUNNING and not upstream_of(throttle).waiting


def average_rate(batch: BatchTask, ran: int) -> int:
    """Rows per minute over an ended batch's running time: the rows that ran to an end (a cancel's rows are not
    work done) over the time it was running (not the time it waited paused, or ended before staff retried some
    of its rows)."""
    assert batch.started_at and batch.finished_at
    seconds = batch.run_time.total_seconds() or (batch.finished_at - batch.started_at).total_seconds()
    return round(60 * ran / seconds) if seconds >= 1 else ran


def recent_rates(batches: list[BatchTask], now: datetime | None = None) -> dict[int, int]:
    """Rows finished in the last minute per running batch, in one query over the (batch, finished_at) index."""
    since = (now or timezone.now()) - timedelta(minutes=1)
    running = [batch.pk for batch in batches if batch.status == BatchStatus.RUNNING]
    if not running:
        return {}
    rows = Execution.objects.filter(batch_id__in=running, finished_at__gte=since).order_by().values_list("batch_id")
    return dict(rows.annotate(n=Count("id")))


def error_counts(batch_id: int) -> list[tuple[str, int]]:
    """(error type, failed rows) for a batch, most frequent first, over the (batch, status, error_type) index."""
    rows = (
        Execution.objects.filter(batch_id=batch_id, status=ExecutionStatus.FAILED)
        .order_by()
        .values_list("error_type")
        .annotate(n=Count("id"))
    )
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def failures(batch_id: int, error_type: str = "") -> QuerySet[Execution]:
    """A batch's failed rows in index order, with only the columns a failures table shows."""
    rows = Execution.objects.filter(batch_id=batch_id, status=ExecutionStatus.FAILED)
    if error_type:
        rows = rows.filter(error_type=error_type)
    return rows.only(*FAILURE_FIELDS).order_by("index")


def recent_failures(batch_id: int, limit: int) -> QuerySet[Execution]:
    return failures(batch_id).order_by("-finished_at", "-index")[:limit]


def attempts(execution: Execution) -> QuerySet[Attempt]:
    return Attempt.objects.filter(execution=execution).order_by("number", "pk")


def batch_summaries(batches: list[BatchTask]) -> list[dict[str, object]]:
    """What `batch_status --json` prints: one dict per batch, from one aggregate query and one for the upstreams."""
    counts, tokens = counts_and_tokens([batch.pk for batch in batches])
    found = upstreams(batch.workflow_id for batch in batches)
    return [_summary(batch, counts[batch.pk], tokens[batch.pk], found[batch.workflow_id]) for batch in batches]


def _summary(batch: BatchTask, counts: dict[str, int], tokens: int, upstream: Upstream) -> dict[str, object]:
    return {
        "id": batch.pk,
        "name": batch.name,
        "status": batch.status,
        "total": sum(counts.values()),
        **counts,
        "total_tokens": tokens,
        "created_at": iso(batch.created_at),
        "started_at": iso(batch.started_at),
        "finished_at": iso(batch.finished_at),
        "upstream": upstream_summary(upstream),
    }


def upstream_summary(upstream: Upstream) -> dict[str, object]:
    return {
        "state": upstream.state,
        "since": iso(upstream.since),
        "last_error": upstream.last_error,
        "next_probe_at": iso(upstream.next_probe_at),
    }


def iso(moment: datetime | None) -> str | None:
    """The one timestamp format of the JSON we write (`batch_status --json`, the pages' JSON): ISO-8601 in UTC
    with a `Z`, as design.md's command-line contract shows it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


@dataclass(frozen=True)
class Upstream:
    """What pages and `batch_status --json` show of a workflow's circuit."""

    state: str = CircuitState.CLOSED
    since: datetime | None = None
    last_error: str = ""
    next_probe_at: datetime | None = None
    probe_answer: str = ""  # what the last health check (GET /parameters) heard, shown whatever the state
    probe_answered_at: datetime | None = None

    @property
    def waiting(self) -> bool:
        return self.state != CircuitState.CLOSED


def upstream_of(throttle: WorkflowThrottle | None) -> Upstream:
    if throttle is None:
        return Upstream()
    heard = Upstream(probe_answer=throttle.probe_answer, probe_answered_at=throttle.probe_answered_at)
    if throttle.circuit == CircuitState.CLOSED:
        return heard
    return replace(
        heard,
        state=throttle.circuit,
        since=throttle.circuit_since,
        last_error=throttle.last_error,
        next_probe_at=throttle.next_probe_at,
    )


def upstreams(workflow_ids: Iterable[int]) -> dict[int, Upstream]:
    """The circuit of each workflow, in one query."""
    workflow_ids = set(workflow_ids)
    throttles = WorkflowThrottle.objects.filter(workflow_id__in=workflow_ids)
    found = {throttle.workflow_id: upstream_of(throttle) for throttle in throttles}
    return {workflow_id: found.get(workflow_id, Upstream()) for workflow_id in workflow_ids}


# --------------------------------------------------------------------------- what the pages open (404 if missing)


def batch_or_404(pk: int, *related: str) -> BatchTask:
    """A batch by id, with the given relations read in the same query (e.g. "workflow__throttle")."""
    rows = BatchTask.objects.shown()
    return get_object_or_404(rows.select_related(*related) if related else rows, pk=pk)


def batches(status: str = "") -> QuerySet[BatchTask]:
    """The batch list, newest first, with their workflows; only those in `status` if given."""
    rows = BatchTask.objects.shown().select_related("workflow")
    return rows.filter(status=status) if status else rows


def execution_or_404(pk: int) -> Execution:
    return get_object_or_404(Execution.objects.select_related("batch"), pk=pk)


def workflow_or_404(pk: int) -> Workflow:
    return get_object_or_404(Workflow, pk=pk)


def workflow(pk: int) -> Workflow | None:
    return Workflow.objects.filter(pk=pk).first()


def workflows() -> QuerySet[Workflow]:
    return Workflow.objects.all()


def workflows_with_upstreams() -> list[tuple[Workflow, WorkflowThrottle | None]]:
    """Every workflow with its throttle row (None until its first call), in two queries."""
    found = list(Workflow.objects.all())
    throttles = WorkflowThrottle.objects.in_bulk([item.pk for item in found])
    return [(item, throttles.get(item.pk)) for item in found]
