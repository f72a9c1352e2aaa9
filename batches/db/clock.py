"""The database's clock: the one time every process and machine compares (leases, backoff, buckets, slots).

A machine whose own clock runs ahead would otherwise see live leases as expired and pay for their rows twice.
Each process reads the database's clock now and then and counts on from that reading with its monotonic clock,
so no query is added to the hot path and the local wall clock never decides whether a lease expired.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from django.db import connection

RESYNC_SECONDS = 30.0  # monotonic and database clocks drift apart by far less than a millisecond in this time

_lock = threading.Lock()
_reading: tuple[float, datetime] | None = None  # (monotonic time, database time) of the last reading


def now() -> datetime:
    """The database's current time (aware, UTC), read at most every RESYNC_SECONDS."""
    global _reading
    with _lock:
        if _reading is None or time.monotonic() - _reading[0] > RESYNC_SECONDS:
            _reading = _read()
        taken_at, database_time = _reading
        return database_time + timedelta(seconds=time.monotonic() - taken_at)


def forget() -> None:
    """Read the database's clock again at the next call (another database, or a test)."""
    global _reading
    with _lock:
        _reading = None


def _read() -> tuple[float, datetime]:
    before = time.monotonic()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT statement_timestamp()")
            value = cursor.fetchone()[0]
        else:  # SQLite: one machine's file, its C library's clock (not Python's, which a test may shift)
            cursor.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
            value = datetime.fromisoformat(cursor.fetchone()[0]).replace(tzinfo=UTC)
    after = time.monotonic()
    return (before + after) / 2, value.astimezone(UTC)
