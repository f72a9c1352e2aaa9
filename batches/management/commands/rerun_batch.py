from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.imports import mapping
from batches.management.utils import get_batch
from batches.models import Workflow
from batches.services.rerun import Only, RerunError, RerunOptions, rerun_batch


class Command(BaseCommand):
    help = "Run a batch's rows again as a new batch (on another workflow if given); the last line of stdout is its id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch_id", type=int)
        parser.add_argument("--workflow", help="name of the workflow to run on (default: the batch's)")
        parser.add_argument("--only", choices=[Only.FAILED, Only.ALL], default=Only.ALL)
        parser.add_argument("--name", default="")
        parser.add_argument("--no-start", action="store_true")
        # On another workflow, as import_batch: a column of the rows → that app's variable, or ignored.
        parser.add_argument("--map", action="append", default=[], metavar="COLUMN=VARIABLE")
        parser.add_argument("--ignore", action="append", default=[], metavar="COLUMN")

    def handle(self, *args: Any, **options: Any) -> None:
        source = get_batch(options["batch_id"])
        workflow = None
        if options["workflow"]:
            workflow = Workflow.objects.filter(name=options["workflow"]).first()
            if workflow is None:
                raise CommandError(f"workflow '{options['workflow']}' does not exist (see add_workflow)")
        try:
            columns = mapping.from_options(options["map"], options["ignore"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        choice = RerunOptions(
            workflow=workflow,
            only=options["only"],
            name=options["name"],
            start=not options["no_start"],
            mapping=columns or None,
        )
        try:
            batch = rerun_batch(source.pk, options=choice)
        except RerunError as exc:
            raise CommandError(f"batch {source.pk}: {exc}") from None
        self.stdout.write(str(batch.pk))
