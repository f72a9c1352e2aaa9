from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.models import Workflow
from batches.services.upstream_health import probe_upstream


class Command(BaseCommand):
    help = "Probe a workflow's upstream now (after an outage) and print its circuit state."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow", help="the workflow's name")

    def handle(self, *args: Any, **options: Any) -> None:
        workflow = Workflow.objects.filter(name=options["workflow"]).first()
        if workflow is None:
            raise CommandError(f"workflow '{options['workflow']}' does not exist")
        probe = probe_upstream(workflow.pk)
        if probe.upstream.probe_answer:
            self.stderr.write(f"health check (GET /parameters): {probe.upstream.probe_answer}")
        if probe.failure or probe.upstream.last_error:
            self.stderr.write(f"last error: {probe.failure or probe.upstream.last_error}")
        self.stdout.write(probe.upstream.state)
