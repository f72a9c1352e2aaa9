import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from batches.management.utils import get_batch
from batches.models import BatchTask
from batches.selectors.batches import batch_summaries
from batches.services import costs

COLUMNS = ("id", "status", "total", "pending", "running", "succeeded", "failed", "cancelled", "total_tokens", "name")


class Command(BaseCommand):
    help = "Show the progress of one batch or of all batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch_id", type=int, nargs="?")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_id = options["batch_id"]
        batches = [get_batch(batch_id)] if batch_id is not None else list(BatchTask.objects.shown().order_by("pk"))
        # The cost and latency keys (issue 31) come after, and never replace, the keys design.md lists.
        summaries = [
            {**s, **costs.costs_of(b).as_json()} for b, s in zip(batches, batch_summaries(batches), strict=True)
        ]
        if options["json"]:
            self.stdout.write(json.dumps(summaries[0] if batch_id is not None else summaries, ensure_ascii=False))
            return
        self.stdout.write("  ".join(f"{column:>9}" for column in COLUMNS))
        for summary in summaries:
            self.stdout.write("  ".join(f"{summary[column]!s:>9}" for column in COLUMNS))
