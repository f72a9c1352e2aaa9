"""File and file-list variables: a cell becomes the file mapping Dify's `file_factory` accepts.

Dify refuses a plain text for a file variable ("doc in input form must be a file", dify-real case 29). A cell holds
an http(s) URL, sent as `{"type", "transfer_method": "remote_url", "url"}`, or, when the table came in a ZIP, the
path of a file in that ZIP, stored as `{"type", "transfer_method": "local_file", "file": path}` and sent with the
`upload_file_id` of its one upload (batches/runner/row_call.py). A file-list cell holds several (one per line, or a JSON
array). The type is the one Dify itself detects (file_types.py); a file Dify would refuse is refused here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol
from urllib.parse import urlsplit

from batches.dify import file_types, hosts
from batches.dify.types import InputVariable

FILE_TYPES = frozenset({"file", "file-list"})
REMOTE, LOCAL = "remote_url", "local_file"
MAX_FILES_IN_CELL = 1000
METHOD_NAMES = {REMOTE: "files by URL", LOCAL: "uploaded files"}


class FileInputError(ValueError):
    """A file reference the app would refuse; one line naming the variable (inputs.InputError wraps it)."""


class Archive(Protocol):
    """The ZIP a table came in (batches/imports/zip_import.py)."""

    def take(self, name: str) -> int | None:
        """Check that the ZIP holds `name` (FileInputError if not) and keep it for upload; its size if known."""


_archive: ContextVar[Archive | None] = ContextVar("batches_files_archive", default=None)


@contextlib.contextmanager
def archive_scope(archive: Archive) -> Iterator[None]:
    """Within this block, converted rows may name files of `archive` (rows are read lazily: consume them here)."""
    token = _archive.set(archive)
    try:
        yield
    finally:
        _archive.reset(token)


def convert(value: Any, variable: InputVariable, label: str) -> dict[str, Any] | list[dict[str, Any]]:
    """A cell of a file or file-list variable as its mapping(s); FileInputError when the app would refuse it."""
    if variable.type == "file":
        items = _items(value, label)
        if len(items) != 1:
            raise FileInputError(f"{label} takes one file, not {len(items)}")
        return _mapping(items[0], variable, label)
    items = _items(value, label)
    if variable.max_length and len(items) > variable.max_length:
        raise FileInputError(f"{label} holds {len(items)} files, over its limit of {variable.max_length}")
    return [_mapping(item, variable, label) for item in items]


def _items(value: Any, label: str) -> list[Any]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            raise FileInputError(f"{label} starts with '[' and is not a valid JSON array") from None
    items = value if isinstance(value, list) else [line for line in str(value).splitlines() if line.strip()]
    if not items:
        raise FileInputError(f"{label} names no file")
    if len(items) > MAX_FILES_IN_CELL:
        raise FileInputError(f"{label} names {len(items)} files, more than {MAX_FILES_IN_CELL}")
    return items


def _mapping(item: Any, variable: InputVariable, label: str) -> dict[str, Any]:
    if isinstance(item, dict):
        return _stored_mapping(item, variable, label)
    if not isinstance(item, str):
        raise FileInputError(f"{label} must name a file (a URL or a path), not a JSON {type(item).__name__}")
    text = item.strip()
    if is_url(text):
        detected = file_types.of_url(text)
        if not detected.type:
            raise FileInputError(
                f"{label} is {_cut(text)}, a URL without a file extension: Dify would type it by what its server "
                "answers; give the URL its extension, or put the file in a ZIP"
            )
        check_accepted(detected, REMOTE, variable, f"{label} {_cut(text)}")
        problem = hosts.file_url_problem(text)  # Dify fetches it: never a metadata service, whatever it fetches
        if problem is not None:
            raise FileInputError(f"{label} {_cut(text)} {problem}")
        if file_types.private_host(text):
            raise FileInputError(
                f"{label} {_cut(text)} names a private address, which Dify's SSRF proxy does not fetch "
                "(BATCHES_DIFY_FETCHES_PRIVATE_URLS)"
            )
        return {"type": detected.type, "transfer_method": REMOTE, "url": text}
    return _local(text, variable, label)


def _local(text: str, variable: InputVariable, label: str) -> dict[str, Any]:
    archive = _archive.get()
    if archive is None:
        raise FileInputError(
            f"{label} is {_cut(text)!r}, not an http(s) URL "
            "(to send files, import a ZIP holding the table and the files)"
        )
    name = normal_name(text)
    detected = file_types.of_upload(name)
    check_accepted(detected, LOCAL, variable, f"{label} {name!r}")
    try:
        size = archive.take(name)
    except FileInputError as exc:
        raise FileInputError(f"{label} {exc}") from None
    refusal = file_types.upload_refusal(name, size) if size is not None else ""
    if refusal:
        raise FileInputError(f"{label} {name!r} {refusal}")
    return {"type": detected.type, "transfer_method": LOCAL, "file": name}


def _cut(text: str) -> str:
    return text if len(text) <= 60 else text[:59] + "…"


def _stored_mapping(item: dict[str, Any], variable: InputVariable, label: str) -> dict[str, Any]:
    """A mapping as an export wrote it (a JSONL round trip): a URL stays one; a ZIP's file needs its ZIP again."""
    method = item.get("transfer_method")
    if method == REMOTE and isinstance(item.get("url"), str) and is_url(item["url"]):
        return _mapping(item["url"], variable, label)
    if method == LOCAL and isinstance(item.get("file"), str):
        return _local(item["file"], variable, label)
    raise FileInputError(f"{label} is a JSON object that is not a file of this table (a URL or a path)")


def is_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in text)


def normal_name(text: str) -> str:
    """A path as typed in a cell, in the ZIP's spelling: forward slashes, no leading './'."""
    name = text.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def check_accepted(detected: file_types.Detected, method: str, variable: InputVariable, shown: str) -> None:
    """Dify's file_factory._is_file_valid_with_config, with the type it detects (its strict Service API check):
    a type the variable does not allow is refused unless it is `custom`; `custom` needs its extension listed
    (exactly, with the dot); the upload method is not checked for images (Dify checks it against an image config
    a Start variable does not have)."""
    kind, allowed = detected.type, variable.allowed_file_types
    if allowed and kind not in allowed and kind != file_types.CUSTOM:
        raise FileInputError(f"{shown} is {_a(kind)} to Dify; the app accepts {_accepted(variable)}")
    if kind == file_types.CUSTOM and detected.extension not in variable.allowed_file_extensions:
        what = f"a {detected.extension} file" if detected.extension else "a file without an extension"
        raise FileInputError(f"{shown} is {what}, which Dify types `custom`; the app accepts {_accepted(variable)}")
    methods = variable.allowed_file_upload_methods
    if kind != "image" and methods and method not in methods:
        allows = ", ".join(methods)
        raise FileInputError(f"{shown}: the app does not accept {METHOD_NAMES[method]} (it allows {allows})")


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _accepted(variable: InputVariable) -> str:
    allowed = variable.allowed_file_types
    kinds = [name for name in allowed if name != file_types.CUSTOM] or ([] if allowed else ["any type"])
    if variable.allowed_file_extensions:
        kinds.append("custom files " + ", ".join(variable.allowed_file_extensions))
    return ", ".join(kinds) or "no file Dify can take"


# ----------------------------------------------------------------------------------------------- stored inputs


def _mappings(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict) and item.get("transfer_method") in (REMOTE, LOCAL)]


def has_files(inputs: dict[str, Any]) -> bool:
    return any(_mappings(value) for value in inputs.values())


def local_names(inputs: dict[str, Any]) -> list[str]:
    """The ZIP files a row's inputs name, in order, each once."""
    names = [m["file"] for value in inputs.values() for m in _mappings(value) if m["transfer_method"] == LOCAL]
    return list(dict.fromkeys(name for name in names if isinstance(name, str)))


def with_upload_ids(inputs: dict[str, Any], upload_ids: dict[str, str]) -> dict[str, Any]:
    """The inputs as sent: each ZIP file's mapping carries its upload id instead of its path."""
    return {key: _sent(value, upload_ids) for key, value in inputs.items()}


def _sent(value: Any, upload_ids: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_sent(item, upload_ids) for item in value]
    if isinstance(value, dict) and value.get("transfer_method") == LOCAL and value.get("file") in upload_ids:
        return {
            "type": value.get("type", "custom"),
            "transfer_method": LOCAL,
            "upload_file_id": upload_ids[value["file"]],
        }
    return value


def display(value: Any) -> str | None:
    """The file name(s) a cell holds, for pages; None when the value is not a file mapping."""
    mappings = _mappings(value)
    if not mappings or (isinstance(value, list) and len(mappings) != len(value)):
        return None
    return ", ".join(_shown_name(mapping) for mapping in mappings)


def _shown_name(mapping: dict[str, Any]) -> str:
    if mapping["transfer_method"] == LOCAL:
        return str(mapping.get("file") or mapping.get("upload_file_id") or "")
    return str(mapping.get("url") or "")  # a URL as the file had it: its host and path say which file it is
