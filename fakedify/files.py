"""The fake Dify's files: POST /v1/files/upload, file variables in /parameters, and Dify's checks of file mappings.

Counts uploads per file name so tests can assert "uploaded once"; `/_fake/files/expire` forgets every upload (as
Dify's storage clean-up would: a run naming one then answers 400 "Invalid upload file"), `/_fake/files/fail` makes
the next uploads fail (a transient 503, or any status), so retries can be tested. The routes are in server.py (the
upload in endpoints.py, expire and fail in control.py); checks.py calls `problem` for each declared variable.
"""

from __future__ import annotations

import collections
import json
import mimetypes
import time
import uuid
from collections.abc import Container
from pathlib import PurePosixPath
from typing import Any

from aiohttp import BodyPartReader, web

from fakedify import wire
from fakedify.options import FILE_KINDS, METHODS

READ_CHUNK = 256 * 1024
DIFY_UPLOAD_ERRORS = {  # controllers/common/errors.py
    413: ("file_too_large", "File size exceeded. 15.00 MB > 15 MB"),
    415: ("unsupported_file_type", "File type not allowed."),
    400: ("no_file_uploaded", "Please upload your file."),
}


class FakeFiles:
    """The uploads the fake keeps (by id), how often each name was uploaded, and the failures it was told to give."""

    def __init__(self) -> None:
        self.uploads: dict[str, dict[str, Any]] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.failures: list[int] = []  # statuses the next uploads answer
        self.failed = 0
        self.largest = 0

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def stats(self) -> dict[str, Any]:
        uploads = {"total": sum(self.counts.values()), "by_name": dict(self.counts), "failed": self.failed}
        return {"uploads": {**uploads, "stored": len(self.uploads), "largest": self.largest}}

    async def upload(self, request: web.Request) -> web.Response:
        if self.failures:
            self.failed += 1
            return _failure(self.failures.pop(0))
        try:
            user, name, size = await _read_parts(request)
        except ValueError as exc:
            return wire.error(400, "invalid_param", str(exc))
        if name is None:
            return wire.error(400, "no_file_uploaded", "Please upload your file.")
        if not user:
            return wire.error(400, "invalid_param", "user is required")
        info = _answer(name, size, user)
        self.uploads[info["id"]] = info
        self.counts[name] += 1
        self.largest = max(self.largest, size)
        return wire.restx(201, info)

    async def expire(self, request: web.Request) -> web.Response:
        forgotten = len(self.uploads)
        self.uploads.clear()
        return wire.restx(200, {"forgotten": forgotten})

    async def fail(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        self.failures += [int(body.get("status", 503))] * int(body.get("count", 1))
        return wire.restx(200, {"failing": len(self.failures)})


def problem(kind: str, spec: dict[str, Any], inputs: dict[str, Any], uploads: Container[str]) -> str:
    """Dify's refusal of a file variable's value (base_app_generator, file_factory); "" when it is fine."""
    if kind not in FILE_KINDS:
        return ""
    name, value = spec["variable"], inputs.get(spec["variable"])
    if value in (None, ""):
        return ""
    if kind == "file":
        return (
            _mapping_problem(value, spec, uploads)
            if isinstance(value, dict)
            else f"{name} in input form must be a file"
        )
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return f"{name} in input form must be a list of files"
    if spec.get("max_length") and len(value) > spec["max_length"]:
        return f"Number of files exceeds the maximum limit {spec['max_length']}"
    return next((p for p in (_mapping_problem(item, spec, uploads) for item in value) if p), "")


def _mapping_problem(mapping: dict[str, Any], spec: dict[str, Any], uploads: Container[str]) -> str:
    method = mapping.get("transfer_method")
    if method not in METHODS:
        return f"Invalid file transfer method: {method}"
    allowed_methods = spec.get("allowed_file_upload_methods") or METHODS
    kind = mapping.get("type", "custom")
    if method not in allowed_methods or (spec.get("allowed_file_types") and kind not in spec["allowed_file_types"]):
        return f"File validation failed for file: {mapping.get('url') or mapping.get('upload_file_id')}"
    if method == "remote_url":
        return "" if mapping.get("url") else "Invalid file url"
    return "" if mapping.get("upload_file_id") in uploads else "Invalid upload file"


async def _read_parts(request: web.Request) -> tuple[str, str | None, int]:
    """The `user` field and the file's name and size, read in chunks (a large upload is never held whole)."""
    if not request.content_type.startswith("multipart/"):
        raise ValueError("the body must be multipart/form-data")
    reader = await request.multipart()
    user, name, size = "", None, 0
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "user":
            user = (await part.text()).strip()
        elif part.name == "file":
            name = part.filename or "unnamed"
            while chunk := await part.read_chunk(READ_CHUNK):
                size += len(chunk)
    return user, name, size


def _answer(name: str, size: int, user: str) -> dict[str, Any]:
    extension = PurePosixPath(name).suffix.lstrip(".").lower()
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "size": size,
        "extension": extension,
        "mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "created_by": str(uuid.uuid5(uuid.NAMESPACE_URL, user)),
        "created_at": int(time.time()),
    }


def _failure(status: int) -> web.Response:
    if status in (502, 503, 504):
        return web.Response(status=status, text=f"<html><body>{status}</body></html>", content_type="text/html")
    code, message = DIFY_UPLOAD_ERRORS.get(status, ("internal_server_error", "fake upload failure"))
    return wire.error(status, code, message)
