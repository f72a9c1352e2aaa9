"""How long an import holds its write transaction (SQLite has one writer: runners' lease renewals wait that long).

python bench/import_lock.py [--rows 200000]      # SQLite (a throwaway file) unless DATABASE_URL is set
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import print_table, setup_django


def timed_transactions() -> list[float]:
    """Patch Django's atomic blocks to record how long each outermost one lasted."""
    from django.db import transaction

    held: list[float] = []
    enter, leave = transaction.Atomic.__enter__, transaction.Atomic.__exit__
    state = {"depth": 0, "start": 0.0}

    def timed_enter(self: transaction.Atomic) -> None:
        if state["depth"] == 0:
            state["start"] = time.monotonic()
        state["depth"] += 1
        enter(self)

    def timed_exit(self: transaction.Atomic, *exc: object) -> None:
        leave(self, *exc)  # type: ignore[arg-type]
        state["depth"] -= 1
        if state["depth"] == 0:
            held.append(time.monotonic() - state["start"])

    transaction.Atomic.__enter__, transaction.Atomic.__exit__ = timed_enter, timed_exit  # type: ignore[method-assign,assignment]
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    setup_django()
    from batches.dify import pages as dify
    from batches.services import imports, workflows

    dify.fetch_parameters = lambda app: None  # no upstream to ask
    source = Path(tempfile.mkdtemp()) / "rows.csv"
    source.write_text("text,other\n" + "".join(f"row {i},more text {i}\n" for i in range(args.rows)), encoding="utf-8")
    workflow, _ = workflows.save_workflow(f"lock-{time.time_ns()}", base_url="http://127.0.0.1:9/v1", api_key="k")
    held = timed_transactions()
    start = time.monotonic()
    imports.import_batch(workflow, source, options=imports.ImportOptions(start=False))
    print_table([("import", f"{time.monotonic() - start:.1f} s"), ("longest write transaction", f"{max(held):.1f} s")])


if __name__ == "__main__":
    main()
