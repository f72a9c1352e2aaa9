"""What the New batch preview shows of an upload, worked out once and kept next to it (issue 27, M1).

Reading an upload costs: a ZIP's directory is checked and its table unpacked, and the whole table is read to count
and check its rows. The preview page is a GET anyone may reload, so the result is kept as JSON beside the upload
(`uploads.Upload.path`), under the upload's token: the file's facts (header, first rows), and, per column mapping
and app form, the check (how many rows, or why the mapping does not fit). A reload reads two small files; only a new
mapping reads the upload again. The files go with the upload (`uploads.discard`, `uploads.sweep`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batches.dify.types import InputVariable
from batches.imports import importers, mapping
from batches.imports.uploads import Upload
from batches.services import file_imports
from batches.views import presenters

PREVIEW_ROWS = 20
SHOWN_CHARS = 200  # of a cell, kept for the preview (the page shows 120)


@dataclass
class Facts:
    """The file as written: its format, header and first rows (cell texts), whatever the app expects."""

    format: str
    header: list[str]
    encoding: str | None
    delimiter: str | None
    rows: list[list[str]]


@dataclass
class Check:
    """The file read with one mapping: its row count, or why the mapping does not fit (`error`)."""

    total: int | None
    error: str = ""
    archive: dict[str, Any] | None = None  # a ZIP: its table, files named and held, missing names


@dataclass
class Preview:
    facts: Facts
    check: Check
    chosen: dict[str, str]  # header → variable or mapping.IGNORE


def preview(
    upload: Upload,
    *,
    mode: str,
    variables: list[InputVariable] | None,
    chosen: dict[str, str] | None,
    remembered: dict[str, str],
) -> Preview:
    """The upload's preview with `chosen` (None: the first guess); ImportFileError if the file itself is refused."""
    facts = _load(upload, "facts", Facts)
    key = None if facts is None else _key(mode, variables, _mapping(facts, mode, variables, chosen, remembered))
    check = None if key is None else _load(upload, key, Check)
    if facts is None or check is None:
        with file_imports.opened_table(upload.path, upload.filename) as table:
            facts = facts or _save(upload, "facts", _facts(table))
            chosen = _mapping(facts, mode, variables, chosen, remembered)
            check = _save(upload, _key(mode, variables, chosen), _check(table, mode, variables, chosen))
    return Preview(facts, check, _mapping(facts, mode, variables, chosen, remembered))


def _mapping(
    facts: Facts,
    mode: str,
    variables: list[InputVariable] | None,
    chosen: dict[str, str] | None,
    remembered: dict[str, str],
) -> dict[str, str]:
    if chosen is not None:
        return {cell: chosen.get(cell, mapping.IGNORE) for cell in facts.header}
    return mapping.guess(facts.header, variables or None, mode, remembered)


def _facts(table: file_imports.Table) -> Facts:
    parsed, rows = importers.preview(table.path, filename=table.filename, limit=PREVIEW_ROWS)
    texts = [[presenters.cell_text(value)[:SHOWN_CHARS] for value in row.values()] for row in rows]
    return Facts(parsed.format, parsed.header, parsed.encoding, parsed.delimiter, texts)


def _check(
    table: file_imports.Table, mode: str, variables: list[InputVariable] | None, chosen: dict[str, str]
) -> Check:
    try:
        total = importers.count_rows(
            table.path, filename=table.filename, variables=variables or None, mode=mode, mapping=chosen
        )
    except mapping.MappingError as exc:
        return Check(None, str(exc))
    return Check(total, archive=_archive(table.archive))


def _archive(archive: Any) -> dict[str, Any] | None:
    if archive is None:
        return None
    return {
        "table_name": archive.table_name,
        "named": len(archive.taken),
        "file_count": archive.file_count,
        "taken_bytes": archive.taken_bytes,
        "missing": list(archive.missing),
    }


def _key(mode: str, variables: list[InputVariable] | None, chosen: dict[str, str]) -> str:
    form = [dataclasses.asdict(variable) for variable in variables] if variables is not None else None
    text = json.dumps([mode, form, chosen], sort_keys=True, default=str)
    return "check-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _path(upload: Upload, key: str) -> Path:
    return upload.path.with_name(f"{upload.token}.{key}.json")


def _load(upload: Upload, key: str, kind: Any) -> Any:
    try:
        return kind(**json.loads(_path(upload, key).read_text()))
    except (OSError, ValueError, TypeError):  # not there yet, or written by another version
        return None


def _save(upload: Upload, key: str, value: Any) -> Any:
    path = _path(upload, key)
    path.with_suffix(".tmp").write_text(json.dumps(dataclasses.asdict(value)))
    path.with_suffix(".tmp").replace(path)  # readers see the whole file or none
    return value
