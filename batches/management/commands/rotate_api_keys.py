from typing import Any

from django.core.management.base import BaseCommand, CommandError

from batches.db import crypto
from batches.models import Workflow


def _keys(count: int) -> str:
    return f"{count} API key" if count == 1 else f"{count} API keys"


class Command(BaseCommand):
    help = "Encrypt every stored API key again under the newest key of BATCHES_ENCRYPTION_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        rotation = crypto.rotate(Workflow, "api_key")
        self.stdout.write(f"Re-encrypted {_keys(rotation.rotated)} under the newest key.")
        if rotation.unreadable:
            names = ", ".join(rotation.unreadable)
            count = len(rotation.unreadable)
            raise CommandError(
                f"{_keys(count)} could not be decrypted with any configured key (enter them again): {names}"
            )
