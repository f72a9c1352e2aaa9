"""`/metrics`: the Prometheus text format, every value read from the database at scrape time.

Reading the tables instead of counting in each process means the numbers survive restarts and agree across every
web and worker process without prometheus_client's multi-process mode: counters (`batches_calls_total`, the
latency histogram) are counts of Attempt rows, so they only go down when `prune_batches` deletes old batches
(Prometheus' `rate()` treats that as a counter reset). A scrape costs a few aggregate queries over the executions
and attempts tables: scrape every 30-60 s, not every second, on large databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count, F, Min, Q, Sum
from django.db.models.functions import Coalesce
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from batches.choices import BatchStatus, CircuitState
from batches.conf import settings
from batches.db import clock
from batches.models import Attempt, BatchTask, ClusterHeartbeat, Execution, RunnerSlot, WorkflowThrottle
from batches.selectors.health import WORKER_WINDOW

BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
CIRCUIT_VALUES: dict[str, int] = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
WORKFLOW = F("execution__batch__workflow__name")


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = clock.now()
        yield executions()
        yield batches()
        yield calls()
        yield call_seconds()
        yield circuits()
        yield from engine(now)


def executions() -> Metric:
    family = GaugeMetricFamily("batches_executions", "Rows by workflow and status.", labels=["workflow", "status"])
    counts = Execution.objects.order_by().values_list("batch__workflow__name", "status").annotate(n=Count("pk"))
    for workflow, status, count in counts:
        family.add_metric([workflow, status], count)
    return family


def batches() -> Metric:
    family = GaugeMetricFamily("batches_batches", "Batches by workflow and status.", labels=["workflow", "status"])
    for workflow, status, count in (
        BatchTask.objects.order_by().values_list("workflow__name", "status").annotate(n=Count("pk"))
    ):
        family.add_metric([workflow, status], count)
    return family


def calls() -> Metric:
    family = CounterMetricFamily(
        "batches_calls",
        "Calls to Dify (attempts) by outcome and error type.",
        labels=["workflow", "outcome", "error_type"],
    )
    rows = Attempt.objects.order_by().values_list(WORKFLOW, "outcome", "error_type").annotate(n=Count("pk"))
    for workflow, outcome, error_type, count in rows:
        family.add_metric([workflow, outcome, error_type], count)
    return family


def call_seconds() -> Metric:
    family = HistogramMetricFamily("batches_call_seconds", "Latency of calls to Dify.", labels=["workflow"])
    buckets = {f"le{i}": Count("pk", filter=Q(latency__lte=bound)) for i, bound in enumerate(BUCKETS)}
    timed = Attempt.objects.filter(latency__isnull=False).order_by().values(workflow=WORKFLOW)
    for row in timed.annotate(total=Count("pk"), seconds=Sum("latency"), **buckets):
        cumulative = [(str(bound), row[f"le{i}"]) for i, bound in enumerate(BUCKETS)] + [("+Inf", row["total"])]
        family.add_metric([row["workflow"]], cumulative, row["seconds"] or 0.0)
    return family


def circuits() -> Metric:
    family = GaugeMetricFamily(
        "batches_circuit_state", "Upstream circuit per workflow: 0 closed, 1 half open, 2 open.", labels=["workflow"]
    )
    for workflow, state in WorkflowThrottle.objects.values_list("workflow__name", "circuit"):
        family.add_metric([workflow], CIRCUIT_VALUES.get(state, 0))
    return family


def engine(now: datetime) -> Iterator[Metric]:
    yield GaugeMetricFamily("batches_runners", "Runner slots in use.", value=RunnerSlot.objects.held(now).count())
    yield GaugeMetricFamily("batches_runner_slots", "Runner slots (BATCHES_RUNNERS).", value=settings.BATCHES_RUNNERS)
    in_flight = Execution.objects.running().count()
    yield GaugeMetricFamily("batches_calls_in_flight", "Rows running now (calls in flight).", value=in_flight)
    live = ClusterHeartbeat.objects.filter(seen_at__gte=now - WORKER_WINDOW).count()
    yield GaugeMetricFamily("batches_live_clusters", "qcluster processes seen in the last minute.", value=live)
    yield GaugeMetricFamily(
        "batches_oldest_due_seconds", "Age of the oldest row of a running batch due to run.", value=oldest_due(now)
    )


def oldest_due(now: datetime) -> float:
    """Seconds since the oldest due row became due (its backoff ended, or its batch started); 0 when none."""
    due = Execution.objects.due(now).filter(batch__status=BatchStatus.RUNNING)
    since = due.aggregate(at=Min(Coalesce("not_before", "batch__started_at")))["at"]
    return max(0.0, (now - since).total_seconds()) if since else 0.0


def registry() -> CollectorRegistry:
    made = CollectorRegistry(auto_describe=False)
    made.register(DatabaseCollector())
    return made
