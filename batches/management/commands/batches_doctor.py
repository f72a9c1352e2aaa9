import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from batches.selectors import health


class Command(BaseCommand):
    help = "Check the database, migrations, worker clusters and running batches; exit status 1 when something is wrong."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        facts = health.check(with_retention=True)
        if options["json"]:
            self.stdout.write(json.dumps(facts.as_dict(), cls=DjangoJSONEncoder, ensure_ascii=False))
        else:
            self.stdout.write("\n".join(describe(facts)))
        if facts.problems():
            raise SystemExit(1)


def describe(facts: health.Health) -> list[str]:
    clusters = ", ".join(f"{worker['node']}:{worker['pid']}" for worker in facts.workers)
    stuck = ", ".join(f"#{batch['id']} {batch['name']}" for batch in facts.stuck)
    lines = [
        f"database: {'ok' if facts.database else 'does not answer'}",
        f"migrations not applied: {', '.join(facts.unapplied_migrations) or 'none'}",
        f"clusters seen in the last minute: {clusters or 'none'}",
        f"stuck batches: {stuck or 'none'}",
        f"retention: {_retention(facts.retention)}",
    ]
    problems = facts.problems()
    return lines + [f"PROBLEM: {problem}" for problem in problems] + ([] if problems else ["ok"])


def _retention(retention: dict[str, Any]) -> str:
    if not retention:
        return "unknown"
    pruning = ", ".join(f"#{batch['id']} since {batch['since']}" for batch in retention["pruning"])
    kept = "off (BATCHES_KEEP_DAYS unset)" if retention["keep_days"] is None else f"{retention['keep_days']:g} days"
    due = "" if retention["due"] is None else f", {retention['due']} batches due"
    return f"{kept}{due}; being pruned: {pruning or 'none'}"
