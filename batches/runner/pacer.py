"""When each of a runner's periodic chores is next due: renewing leases, polling for work, re-reading batches."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """One clock (a test scripts it) and, for each chore by name, the time it is next due."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.due: dict[str, float] = {}

    def every(self, chore: str, seconds: float) -> bool:
        """True at most once per `seconds` for each chore; a chore never asked about is due."""
        now = self.clock()
        if now < self.due.get(chore, 0.0):
            return False
        self.due[chore] = now + seconds
        return True

    def due_now(self, chore: str) -> None:
        """The chore's next `every` is true, however recently it ran."""
        self.due.pop(chore, None)
