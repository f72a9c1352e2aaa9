"""The planner's statistics on executions, refreshed after a bulk change (an import, a mass retry, a rerun)."""

from __future__ import annotations

from django.db import connection

from batches.models import Execution

# What claims and pages filter and sort on; the JSON columns would only make ANALYZE slower.
PLANNED_COLUMNS = ("batch", "status", "index", "not_before", "lease_expires_at", "error_type", "finished_at")


def refresh_statistics() -> None:
    """Refresh PostgreSQL's statistics on executions after a bulk change.

    Autovacuum analyzes only after a tenth of the table changed. Until then the planner believes a new batch has no
    pending rows, and every claim sorts all of them: 8 ms instead of 0.5 ms at 20,000 rows, ten times a second.
    """
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        planned = [field for field in Execution._meta.concrete_fields if field.name in PLANNED_COLUMNS]
        columns = ", ".join(quote(field.column) for field in planned)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {quote(Execution._meta.db_table)} ({columns})")
