"""The call results a runner has received and not yet written, and when they are due to be written.

Results wait while calls are still ending: the two cores go to the successors' claims and requests first, and the
results follow in one write. A claim may meanwhile mark their rows as ended (so it can refill their places).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from django.db import DatabaseError, InterfaceError, OperationalError

from batches.choices import ErrorType
from batches.dify.types import CallResult
from batches.services import leases, results

logger = logging.getLogger(__name__)
# Results are written once calls have stopped ending for WRITE_WHEN_QUIET seconds, or when the oldest has waited
# WRITE_WITHIN: fewer, larger writes, out of the way of the successors' claims while a wave is ending.
WRITE_WHEN_QUIET = 0.06
WRITE_WITHIN = 0.5


class ResultBacklog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.results: list[tuple[leases.Claim, CallResult]] = []
        self.marked: set[int] = set()  # rows of the backlog a claim has marked as ended
        self.since = 0.0  # when the oldest result came in
        self.last_end = 0.0  # when the latest call's end came in

    def __len__(self) -> int:
        return len(self.results)

    def add(self, claim: leases.Claim, result: CallResult) -> None:
        self.last_end = self.clock()
        if not self.results:
            self.since = self.last_end
        self.results.append((claim, result))

    def failed(self) -> bool:
        """Whether a result failed: it may stop the batch (a pause, a 429), so it is written before any claim."""
        return any(not result.ok for _, result in self.results)

    def ended(self, batch_id: int) -> list[int]:
        """The batch's rows whose results wait here and that no claim has marked as ended yet."""
        return [c.execution_id for c, _ in self.results if c.batch_id == batch_id and c.execution_id not in self.marked]

    def mark(self, execution_ids: Iterable[int]) -> None:
        self.marked.update(execution_ids)

    def write_due(self, *, more_coming: bool) -> bool:
        """Whether to write now: calls stopped ending a moment ago, the oldest result waited long enough, or no more
        calls are coming (the slice stops claiming, none is in flight, or the cluster is stopping)."""
        if not self.results:
            return False
        now = self.clock()
        quiet = now - self.last_end >= WRITE_WHEN_QUIET
        overdue = now - self.since >= WRITE_WITHIN
        return quiet or overdue or not more_coming

    def write(self) -> results.Recorded:
        """Record every result and empty the backlog; a database outage raises, and the results stay for later."""
        recorded = self.record()
        self.results = []
        self.marked.clear()
        return recorded

    def record(self) -> results.Recorded:
        try:
            return results.record_results(self.results)
        except (OperationalError, InterfaceError):
            raise
        except DatabaseError:
            logger.exception("could not record %s results; recording them one by one", len(self.results))
            return self.record_one_by_one()

    def record_one_by_one(self) -> results.Recorded:
        """A result the database refuses (not an outage) is recorded as a failed try instead of being retried
        in silence forever; the row then follows its retry rules."""
        total = results.Recorded()
        for claim, result in self.results:
            try:
                recorded = results.record_results([(claim, result)])
            except (OperationalError, InterfaceError):
                raise
            except DatabaseError as exc:
                logger.exception("execution %s: its result could not be recorded", claim.execution_id)
                error = f"internal error: the result could not be recorded ({type(exc).__name__})"
                failed = CallResult(ok=False, error_type=ErrorType.BAD_RESPONSE, error=error)
                recorded = results.record_results([(claim, failed)])
            total.written += recorded.written
            total.discarded += recorded.discarded
            total.batch_ids |= recorded.batch_ids
        return total
