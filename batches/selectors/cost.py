"""What a batch cost and how fast it answered: tokens, price (Dify's, or an estimate), latency percentiles, rate.

Dify reports a price for chat and completion apps (`metadata.usage.total_price`, with its currency); workflow apps
report tokens only. Their cost is estimated from the workflow's price per 1,000 tokens, when one is set, and
marked as an estimate. Latency is ours: the time of the successful try, from the request to its last byte.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, Max, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from batches.choices import ExecutionStatus
from batches.conf import settings
from batches.models import BatchTask, Execution, Workflow

PRICE_STEP = Decimal("0.000001")  # costs are shown to a millionth
RECENT_BATCHES = 5


@dataclass
class CostSummary:
    total_tokens: int = 0
    cost: Decimal | None = None  # None: neither a reported price nor a price per 1,000 tokens
    currency: str = ""
    cost_estimated: bool = False  # some or all of `cost` is an estimate from the price per 1,000 tokens
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_max: float | None = None
    rows_per_minute: float | None = None  # succeeded rows per minute since the batch started

    def as_json(self) -> dict[str, Any]:
        """The keys `batch_status --json` adds (total_tokens it has already)."""
        data = asdict(self)
        data["cost"] = None if self.cost is None else str(self.cost)
        del data["total_tokens"]
        return data


def batch_costs(batch: BatchTask, *, now: datetime | None = None) -> CostSummary:
    """The batch's figures, read from its rows (services.costs keeps an ended batch's, so they are read once)."""
    rows = Execution.objects.filter(batch_id=batch.pk)
    totals = rows.aggregate(
        tokens=Sum("total_tokens"),
        priced=Sum("price"),
        unpriced_tokens=Sum("total_tokens", filter=Q(price__isnull=True)),
        succeeded=Count("pk", filter=Q(status=ExecutionStatus.SUCCEEDED)),
        currency=Max("currency"),
        slowest=Max("latency"),
        timed=Count("latency"),
    )
    summary = CostSummary(total_tokens=totals["tokens"] or 0, latency_max=totals["slowest"])
    _price(summary, batch.workflow, totals)
    timed = rows.filter(latency__isnull=False)
    summary.latency_p50, summary.latency_p95 = (percentile(timed, totals["timed"], p) for p in (0.5, 0.95))
    summary.rows_per_minute = _rate(batch, totals["succeeded"], now or timezone.now())
    return summary


def _price(summary: CostSummary, workflow: Workflow, totals: dict[str, Any]) -> None:
    reported: Decimal | None = totals["priced"]
    per_1k = workflow.price_per_1k_tokens
    estimate = per_1k * (totals["unpriced_tokens"] or 0) / 1000 if per_1k is not None else None
    if reported is None and estimate is None:
        return
    summary.cost = ((reported or Decimal(0)) + (estimate or Decimal(0))).quantize(PRICE_STEP)
    summary.currency = totals["currency"] or settings.BATCHES_PRICE_CURRENCY
    summary.cost_estimated = bool(estimate and totals["unpriced_tokens"])


def percentile(timed: Any, count: int, fraction: float) -> float | None:
    """The nearest-rank percentile of `count` rows' latency, in one query (no row is read into Python)."""
    if not count:
        return None
    rank = max(0, min(count - 1, math.ceil(fraction * count) - 1))
    return timed.order_by("latency").values_list("latency", flat=True)[rank]


def _rate(batch: BatchTask, succeeded: int, now: datetime) -> float | None:
    """Succeeded rows per minute of running time (not the time the batch waited paused or ended)."""
    if batch.started_at is None:
        return None
    running = batch.run_time + (now - batch.running_since if batch.running_since else timedelta(0))
    if not running:  # batches from before running time was kept
        running = (batch.finished_at or now) - batch.started_at
    minutes = running.total_seconds() / 60
    return round(succeeded / minutes, 2) if minutes > 0 else None


def row_cost(execution: Execution, workflow: Workflow) -> tuple[Decimal | None, bool]:
    """A row's cost and whether it is an estimate."""
    if execution.price is not None:
        return execution.price, False
    if workflow.price_per_1k_tokens is None or not execution.total_tokens:
        return None, False
    return (workflow.price_per_1k_tokens * execution.total_tokens / 1000).quantize(PRICE_STEP), True


@dataclass
class CostDelta:
    label: str
    a: Any
    b: Any
    unit: str = ""

    @property
    def delta(self) -> Any:
        """B − A (None when either side has no value); seconds to the millisecond."""
        if self.a is None or self.b is None:
            return None
        return round(self.b - self.a, 3) if isinstance(self.a, float) else self.b - self.a


def compare_costs(a: BatchTask, b: BatchTask) -> list[CostDelta]:
    """Compare's deltas: tokens, cost and p50 / p95 latency of A and B."""
    ca, cb = batch_costs(a), batch_costs(b)
    currency = ca.currency if ca.currency == cb.currency else ""
    cost_unit = currency + (" ~" if ca.cost_estimated or cb.cost_estimated else "")
    return [
        CostDelta(str(_("Tokens")), ca.total_tokens, cb.total_tokens),
        CostDelta(str(_("Cost")), ca.cost, cb.cost if currency or ca.cost is None else None, cost_unit),
        CostDelta(str(_("Latency p50")), _ms(ca.latency_p50), _ms(cb.latency_p50), "s"),
        CostDelta(str(_("Latency p95")), _ms(ca.latency_p95), _ms(cb.latency_p95), "s"),
    ]


@dataclass
class FileEstimate:
    rows: int
    mean_tokens: float
    tokens: int
    cost: Decimal | None
    currency: str
    from_rows: int  # how many earlier rows the means come from


def estimate_for_file(workflow: Workflow, rows: int) -> FileEstimate | None:
    """New batch's estimate: rows × the mean tokens (and price) of the succeeded rows of the workflow's last
    RECENT_BATCHES batches that ran (None without history). Read over the (batch, status) index."""
    recent = list(
        BatchTask.objects.filter(workflow=workflow, started_at__isnull=False)
        .order_by("-pk")
        .values_list("pk", flat=True)[:RECENT_BATCHES]
    )
    done = Execution.objects.filter(batch_id__in=recent, status=ExecutionStatus.SUCCEEDED)
    means = done.aggregate(n=Count("pk"), tokens=Avg("total_tokens"), price=Avg("price"), currency=Max("currency"))
    if not means["n"]:
        return None
    mean_tokens = float(means["tokens"] or 0)
    per_row = means["price"]
    if per_row is None and workflow.price_per_1k_tokens is not None:
        per_row = workflow.price_per_1k_tokens * Decimal(mean_tokens) / 1000
    cost = None if per_row is None else (Decimal(per_row) * rows).quantize(PRICE_STEP)
    currency = means["currency"] or settings.BATCHES_PRICE_CURRENCY
    return FileEstimate(rows, round(mean_tokens, 1), round(mean_tokens * rows), cost, currency, means["n"])


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def row_delta(a: Execution | None, b: Execution | None) -> str:
    """A pair's B − A tokens and latency, as Compare shows it ("+12 tokens · -0.31 s"); "" unless both ran."""
    if a is None or b is None:
        return ""
    text = _("%(tokens)+d tokens") % {"tokens": b.total_tokens - a.total_tokens}
    if a.latency is not None and b.latency is not None:
        text += " · %+.2f s" % (b.latency - a.latency)
    return text
