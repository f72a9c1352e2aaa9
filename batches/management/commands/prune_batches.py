from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.choices import ENDED, BatchStatus
from batches.services import audit, retention


class Command(BaseCommand):
    help = "Delete batches that ended more than DAYS ago, with their rows, attempts and files, in small chunks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS")
        parser.add_argument("--status", default=",".join(ENDED), help="finished,cancelled (the default) or one")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        statuses = tuple(status.strip() for status in options["status"].split(",") if status.strip())
        if not statuses or set(statuses) - set(ENDED):
            raise CommandError(f"--status takes {BatchStatus.FINISHED} and/or {BatchStatus.CANCELLED}")
        if options["older_than"] < 0:
            raise CommandError("--older-than takes a number of days, 0 or more")
        batches = retention.prunable(older_than_days=options["older_than"], statuses=statuses)
        if options["dry_run"]:
            report = retention.measure(batches)
        else:
            report = retention.prune(batches, actor=audit.of_os_user())
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(
            f"{verb} {report.batches} batches, {report.executions} executions, {report.attempts} attempts, "
            f"{report.files} files"
        )
