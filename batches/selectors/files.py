"""Reads about a row's files, for its page."""

from __future__ import annotations

from dataclasses import dataclass

from batches.imports import files
from batches.models import BatchFile, Execution


@dataclass
class RowFile:
    name: str
    size: int | None = None  # known for a ZIP's file
    upload_id: str = ""
    uploaded_at: object = None
    url: str = ""  # a file sent by URL
    kept: bool = True  # its bytes are still on disk (or it needs none)


def row_files(execution: Execution) -> list[RowFile]:
    """The files a row's inputs name: a ZIP's with size and upload id, a URL's with its address."""
    inputs = execution.inputs if isinstance(execution.inputs, dict) else {}
    names = files.local_names(inputs)
    stored = {f.name: f for f in BatchFile.objects.filter(batch_id=execution.batch_id, name__in=names)}
    shown = [_zip_file(name, stored.get(name)) for name in names]
    return shown + [RowFile(files.display(mapping) or url, url=url) for mapping, url in _urls(inputs)]


def _zip_file(name: str, stored: BatchFile | None) -> RowFile:
    if stored is None:
        return RowFile(name, kept=False)
    return RowFile(name, stored.size, stored.upload_id, stored.uploaded_at, kept=bool(stored.stored))


def _urls(inputs: dict[str, object]) -> list[tuple[dict[str, object], str]]:
    found = []
    for value in inputs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and item.get("transfer_method") == files.REMOTE:
                found.append((item, str(item.get("url") or "")))
    return found
