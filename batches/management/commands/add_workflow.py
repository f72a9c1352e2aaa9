from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.choices import Mode, ResponseMode
from batches.services.audit import of_os_user
from batches.services.workflows import refresh_input_variables, save_workflow


class Command(BaseCommand):
    help = "Create a workflow (a Dify app endpoint) or update the given settings of an existing one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--base-url")
        parser.add_argument("--api-key")
        parser.add_argument("--mode", choices=Mode.values)
        parser.add_argument("--response-mode", choices=ResponseMode.values)
        parser.add_argument("--timeout", type=float)
        parser.add_argument("--rpm", type=int, dest="rpm_limit")
        parser.add_argument("--concurrency", type=int)
        parser.add_argument("--notify-email", action="append", dest="notify_emails", metavar="ADDR")
        parser.add_argument("--webhook-url")
        parser.add_argument("--webhook-secret")
        parser.add_argument("--price-per-1k-tokens", type=Decimal, metavar="AMOUNT")

    def handle(self, *args: Any, **options: Any) -> None:
        fields = {key: options[key] for key in ("base_url", "api_key", "mode", "response_mode", "timeout")}
        fields.update(rpm_limit=options["rpm_limit"], concurrency=options["concurrency"])
        for key in ("notify_emails", "webhook_url", "webhook_secret", "price_per_1k_tokens"):
            fields[key] = options[key]
        if options["webhook_url"] and not options["webhook_secret"]:
            raise CommandError("--webhook-url needs --webhook-secret")
        try:
            workflow, _ = save_workflow(options["name"], actor=of_os_user(), **fields)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        if refresh_input_variables(workflow.pk) is None:
            self.stderr.write(f"warning: {workflow.name}: the app did not answer GET /parameters (no CSV template yet)")
        self.stdout.write(workflow.name)
