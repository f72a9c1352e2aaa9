"""What keeps the admin's execution and attempt lists as fast at ten million rows as at a thousand (issue 30).

- `BoundedPaginator` counts at most COUNT_CAP matches (a COUNT over a LIMITed subquery), never the whole table.
  Past the cap the list says "more than 10000"; filters and the search narrow it.
- `execution_search` is exact on ids (row id, Dify run id, task / message id: each an index lookup) and looks for
  text only within one batch (the batch filter), where the (batch, …) indexes bound the rows read.
- `execution_ordering`: newest batch first, rows in file order within a filtered batch; both walk the unique
  (batch, index) index, so no sort of the history.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from batches.db.folding import FoldedContains
from batches.models import Execution
from batches.selectors.results import search_text

COUNT_CAP = 10_000  # 100 pages of 100 counted at most (a deeper page counts as far as itself)
BATCH_FILTER = "batch__id__exact"


class BoundedPaginator(Paginator):
    def __init__(self, *args: Any, reach: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = max(COUNT_CAP, reach)

    @cached_property
    def count(self) -> int:
        rows: QuerySet[Any] = self.object_list  # type: ignore[assignment]  # the admin pages a QuerySet
        return rows.order_by()[: self.limit + 1].count()

    @property
    def capped(self) -> bool:
        """More matches than were counted: the list says "more than" instead of a number."""
        return self.count > self.limit


class BoundedListMixin:
    """A ModelAdmin whose changelist counts matches only as far as COUNT_CAP, or the page asked for."""

    def get_paginator(self, request: HttpRequest, queryset: QuerySet[Any], per_page: int, *args: Any) -> Paginator:
        page = request.GET.get("p", "")
        reach = min(int(page), 10**6) * per_page + 1 if page.isdigit() else 0
        return BoundedPaginator(queryset, per_page, *args, reach=reach)


def execution_ordering(params: dict[str, str]) -> tuple[str, ...]:
    # "-batch_id", not "-batch": ordering by the relation would sort by the batch's own ordering, a join and a sort.
    return ("index",) if params.get(BATCH_FILTER) else ("-batch_id", "-index")


class ExecutionChangeList(ChangeList):
    """The list shows no inputs, outputs or error text: they are not read (they can be large)."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        return super().get_queryset(request, exclude_parameters).defer("inputs", "outputs", "error")


def execution_search(rows: QuerySet[Execution], term: str, *, within_batch: bool) -> QuerySet[Execution]:
    """Rows whose id, run id or task id is `term`; within one batch, also rows whose text contains it."""
    term = term.strip()
    if not term:
        return rows
    found = Q(workflow_run_id=term) | Q(task_id=term)
    if term.isdigit() and int(term) < 2**63:
        found |= Q(pk=int(term))
    if within_batch:
        return rows.filter(found | Q(FoldedContains(search_text(), term)))
    return rows.filter(found)
