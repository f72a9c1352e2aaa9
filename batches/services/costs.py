"""An ended batch's cost and latency, kept on it once read: a year of history is not read again (issue 30).

The figures cannot change until the batch runs again, which changes its `finished_at`: the kept figures carry the
`finished_at` they were read at, so a batch that ran again is read anew.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from batches.choices import ENDED
from batches.models import BatchTask
from batches.selectors.cost import CostSummary, batch_costs


def costs_of(batch: BatchTask, *, now: datetime | None = None) -> CostSummary:
    if batch.status not in ENDED or batch.finished_at is None:
        return batch_costs(batch, now=now)
    stamp = batch.finished_at.isoformat()
    kept = batch.cost_summary or {}
    if kept.get("finished_at") == stamp:
        return _summary(kept)
    summary = batch_costs(batch, now=now)
    data = {**asdict(summary), "cost": None if summary.cost is None else str(summary.cost), "finished_at": stamp}
    BatchTask.objects.filter(pk=batch.pk, finished_at=batch.finished_at).update(cost_summary=data)
    return summary


def _summary(kept: dict[str, Any]) -> CostSummary:
    values = {key: value for key, value in kept.items() if key != "finished_at"}
    values["cost"] = None if values.get("cost") is None else Decimal(values["cost"])
    return CostSummary(**values)
