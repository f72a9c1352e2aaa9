"""How things read on the staff pages, their JSON twins and the admin: formatting shared by all of them.

Nothing here queries the database: each function shapes what a selector already read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.formats import time_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from batches.choices import ENDED, BatchStatus, ErrorType
from batches.imports import files
from batches.models import BatchTask
from batches.selectors import batches as selectors
from batches.selectors.batches import Progress, Upstream, iso

CLIP = 160  # characters of a cell shown in a table; the row's page shows the whole value
ENCODINGS = {"utf-8": "UTF-8", "utf-8-sig": _("UTF-8 with BOM"), "gb18030": "GB18030 / GBK"}
DELIMITERS = {",": _("comma (,)"), ";": _("semicolon (;)"), "\t": _("tab"), "|": _("vertical bar (|)")}


def waiting_message(upstream: Upstream, now: datetime | None = None) -> str:
    """ "Waiting for Dify since 12:03 — last error: HTTP 502 …; next check in 8 s (last check 12:03:05: …)", or ""
    while it answers."""
    if not upstream.waiting:
        return ""
    if upstream.since is None:  # a streak of failures: the health check is on its way
        text = gettext("Asking Dify whether it is up — last error: %(error)s") % {"error": upstream.last_error}
    elif upstream.next_probe_at is None or upstream.state == "half_open":
        text = gettext("Waiting for Dify since %(since)s — last error: %(error)s; checking now") % {
            "since": time_format(timezone.localtime(upstream.since), "H:i"),
            "error": upstream.last_error,
        }
    else:
        seconds = max(0, round((upstream.next_probe_at - (now or timezone.now())).total_seconds()))
        text = gettext("Waiting for Dify since %(since)s — last error: %(error)s; next check in %(seconds)s s") % {
            "since": time_format(timezone.localtime(upstream.since), "H:i"),
            "error": upstream.last_error,
            "seconds": seconds,
        }
    last = last_check(upstream)
    return f"{text} ({last})" if last else text


def last_check(upstream: Upstream) -> str:
    """ "last check 12:03:05: HTTP 502 upstream_error": what the last health check (GET /parameters) heard."""
    if not upstream.probe_answered_at:
        return ""
    return gettext("last check %(at)s: %(answer)s") % {
        "at": time_format(timezone.localtime(upstream.probe_answered_at), "H:i:s"),
        "answer": upstream.probe_answer,
    }


def progress_bar(counts: dict[str, int]) -> dict[str, int]:
    """What the progress bar template needs, from the counts per execution state (list page and admin)."""
    total = sum(counts.values())
    done = total - counts["pending"] - counts["running"]
    return {**counts, "total": total, "done": done, "percent": 100 * done // total if total else 100}


def eta(seconds: float | None) -> timedelta | None:
    return timedelta(seconds=round(seconds)) if seconds is not None else None


def error_label(error_type: str) -> str:
    return str(ErrorType(error_type).label) if error_type in ErrorType.values else error_type


def error_bars(counts: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Failed rows per error type, with each bar's width relative to the largest."""
    largest = max((n for _, n in counts), default=0)
    return [
        {"error_type": kind, "label": error_label(kind), "count": n, "percent": 100 * n // largest}
        for kind, n in counts
    ]


def segments(progress: Progress) -> dict[str, float]:
    """Widths (percent) of the stacked progress bar's parts."""
    parts = {"succeeded": progress.succeeded, "failed": progress.failed, "cancelled": progress.cancelled}
    parts["running"] = progress.running
    return {name: round(100 * count / progress.total, 2) if progress.total else 0 for name, count in parts.items()}


def progress_data(batch: BatchTask, progress: Progress, errors: list[tuple[str, int]]) -> dict[str, Any]:
    """The batch's live figures, as `progress.json` and the detail page's script see them."""
    left = eta(progress.eta_seconds)
    upstream = selectors.upstream_of(getattr(batch.workflow, "throttle", None))  # read with the batch
    return {
        "upstream": selectors.upstream_summary(upstream),
        "waiting_for_dify": waiting_message(upstream) if batch.status == BatchStatus.RUNNING else "",
        "id": batch.pk,
        "status": batch.status,
        "status_display": str(batch.get_status_display()),
        "status_reason": batch.status_reason,
        "finished": batch.status in ENDED,
        "concurrency": batch.concurrency,
        **{name: getattr(progress, name) for name in ("total", "pending", "running", "succeeded", "failed")},
        **{name: getattr(progress, name) for name in ("cancelled", "done", "percent", "total_tokens")},
        "rate_per_minute": progress.rate_per_minute,
        "eta_seconds": progress.eta_seconds,
        "eta": str(left) if left is not None else None,
        "segments": segments(progress),
        "errors": error_bars(errors),
        "started_at": iso(batch.started_at),
        "finished_at": iso(batch.finished_at),
    }


@dataclass
class Cell:
    """A table cell of the results and compare pages: the text shown, and whether it was cut short."""

    text: str
    clipped: bool
    differs: bool = False  # on the compare page: this output key differs between the two rows
    html: str = ""  # on the compare page: the text with its changed words marked (escaped HTML, see worddiff)


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if (names := files.display(value)) is not None:  # a file cell: its name(s), not its mapping
        return names
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def cell(value: Any) -> Cell:
    text = cell_text(value)
    return Cell(text[:CLIP] + "…", True) if len(text) > CLIP else Cell(text, False)
