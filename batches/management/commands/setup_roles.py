from typing import Any

from django.core.management.base import BaseCommand, CommandError

from batches import roles


class Command(BaseCommand):
    help = 'Create or reset the groups "Batch viewers", "Batch operators" and "Workflow admins" (idempotent).'

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            reports = roles.ensure_roles()
        except roles.MissingPermissions as exc:
            raise CommandError(str(exc)) from exc
        for report in reports:
            state = "created" if report.created else "updated"
            self.stdout.write(f"{report.name}: {report.permissions} permissions ({state})")
