import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from batches.services.recovery import sweep


class Command(BaseCommand):
    help = "Run the recovery sweep now: reset expired leases, finish done batches, wake runners."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report what would be done, change nothing")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        report = sweep(dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        for item in report:
            self.stdout.write(
                "batch {id} ({status}): {interrupted} interrupted, {reset} reset, {failed} failed, "
                "finished: {finished}, runner enqueued: {runner_enqueued}".format(**item)
            )
        if not report:
            self.stdout.write("nothing to recover")
