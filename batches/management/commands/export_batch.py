import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.exports.batches import FORMATS, export_chunks
from batches.management.utils import get_batch


def with_progress(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A byte count on stderr while exporting, when stderr is a terminal (stdout may be the export itself)."""
    if not sys.stderr.isatty():
        yield from chunks
        return
    written = 0
    for chunk in chunks:
        written += len(chunk)
        sys.stderr.write(f"\rexporting: {written / 1_000_000:.1f} MB")
        yield chunk
    sys.stderr.write("\n")


class Command(BaseCommand):
    help = "Export a batch's executions as CSV, XLSX or JSONL (to --output, or stdout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch_id", type=int)
        parser.add_argument("--format", choices=FORMATS, required=True)
        parser.add_argument("--output")

    def handle(self, *args: Any, **options: Any) -> None:
        batch = get_batch(options["batch_id"])
        chunks = with_progress(export_chunks(batch, options["format"]))
        if not options["output"]:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        target = Path(options["output"])
        try:
            with open(target.with_name(target.name + ".part"), "wb") as part:
                part.writelines(chunks)
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror}") from None
        target.with_name(target.name + ".part").replace(target)
