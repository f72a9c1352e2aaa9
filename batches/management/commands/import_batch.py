import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.imports import mapping
from batches.imports.importers import ImportFileError
from batches.management.utils import stderr_progress
from batches.models import Workflow
from batches.services.audit import of_os_user
from batches.services.imports import ImportOptions, import_batch


class Command(BaseCommand):
    help = "Import a CSV / XLSX / JSONL file as a batch (all or nothing); the last line of stdout is its id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--workflow", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--concurrency", type=int)
        parser.add_argument("--max-retries", type=int, default=2)
        parser.add_argument("--no-start", action="store_true")
        parser.add_argument("--map", action="append", default=[], metavar="HEADER=VARIABLE")
        parser.add_argument("--ignore", action="append", default=[], metavar="HEADER")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        workflow = Workflow.objects.filter(name=options["workflow"]).first()
        if workflow is None:
            raise CommandError(f"workflow '{options['workflow']}' does not exist (see add_workflow)")
        if (options["concurrency"] or 1) < 1 or options["max_retries"] < 0:
            raise CommandError("--concurrency must be at least 1 and --max-retries at least 0")
        try:
            columns = mapping.from_options(options["map"], options["ignore"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        choice = ImportOptions(
            name=options["name"],
            concurrency=options["concurrency"],
            max_retries=options["max_retries"],
            start=not options["no_start"],
            mapping=columns or None,
            actor=of_os_user(),
        )
        try:
            batch = import_batch(workflow, path, options=choice, on_progress=stderr_progress("importing"))
        except ImportFileError as exc:
            raise CommandError(f"{path.name}: {exc}") from None
        finally:
            if sys.stderr.isatty():
                sys.stderr.write("\n")
        self.stdout.write(str(batch.pk))
