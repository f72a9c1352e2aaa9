"""The fake Dify's files: POST /v1/files/upload, file variables in /parameters, and Dify's checks of file mappings.

Counts uploads per file name so tests can assert "uploaded once"; `/_fake/files/expire` forgets every upload (as
Dify's storage clean-up would: a run naming one then answers 400 "Invalid upload file"), `/_fake/files/fail` makes
the next uploads fail (a transient 503, or any status), so retries can be tested. The routes are in server.py (the
upload in endpoints.py, expire and fail in control.py); checks.py calls `problem` for each declared variable.

An upload is checked as Dify 1.13.2 checks it (dify-real-files): one file field, a name without / \\ : * ? " < > |,
an extension not in --upload-blacklist, a size within Dify's default limit for its kind; `user` is optional. With
`newer_dify` an upload id names a file only for runs of the user who uploaded it (Dify after 1.13).
"""

from __future__ import annotations

import collections
import json
import mimetypes
import time
import uuid
from pathlib import PurePosixPath
from typing import Any

from aiohttp import BodyPartReader, web

from fakedify import file_checks, wire
from fakedify.options import FILE_KINDS, FakeOptions

READ_CHUNK = 256 * 1024
DIFY_UPLOAD_ERRORS = {  # controllers/common/errors.py; 413's text really is the unformatted template
    413: ("file_too_large", "File size exceeded. {message}"),
    415: ("unsupported_file_type", "File type not allowed."),
    400: ("no_file_uploaded", "Please upload your file."),
}
DEFAULT_USER = "DEFAULT-USER"  # the end user an upload without a `user` field belongs to
FORBIDDEN = set('/\\:*?"<>|')
MB = 1024 * 1024
LIMITS_MB = (  # UPLOAD_IMAGE/VIDEO/AUDIO_FILE_SIZE_LIMIT, else UPLOAD_FILE_SIZE_LIMIT
    (file_checks.IMAGE, 10),
    (file_checks.VIDEO, 100),
    (file_checks.AUDIO, 50),
)
TENANT_ID = "5a1f0c3e-8d2b-4c47-9f3a-2e6b7d8c9a10"


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

    async def upload(self, request: web.Request, options: FakeOptions) -> web.Response:
        """services/file_service.py upload_file behind controllers/service_api/app/file.py, in their order."""
        if self.failures:
            self.failed += 1
            return _failure(self.failures.pop(0))
        if not request.content_type.startswith("multipart/"):
            return wire.error(400, "no_file_uploaded", "Please upload your file.")
        user, files = await _read_parts(request)
        refusal = _refusal(files, options)
        if refusal is not None:
            return refusal
        name, size = files[0][1], files[0][2]
        info = _answer(name, size, user or DEFAULT_USER, files[0][3])
        self.uploads[info["id"]] = {**info, "_user": user or DEFAULT_USER, "_scoped": options.newer_dify}
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


def _refusal(files: list[tuple[str, str, int, str]], options: FakeOptions) -> web.Response | None:
    if not files:
        return wire.error(400, "no_file_uploaded", "Please upload your file.")
    if len({field for field, *_ in files}) > 1:
        return wire.error(400, "too_many_files", "Only one file is allowed.")
    name, size = files[0][1], files[0][2]
    if not name:
        return wire.error(400, "filename_not_exists_error", "The specified filename does not exist.")
    extension = PurePosixPath(name).suffix.lstrip(".").lower()
    if FORBIDDEN & set(name):
        return wire.error(400, "invalid_param", "Filename contains invalid characters")
    if extension and extension in options.upload_blacklist:
        message = f"File extension '.{extension}' is not allowed for security reasons"
        return wire.error(400, "invalid_param", message)
    limit = next((mb for names, mb in LIMITS_MB if extension in names), 15) * MB
    if options.size_limits and size > limit:
        return wire.error(413, "file_too_large", "File size exceeded. {message}")
    return None


def problem(
    kind: str, spec: dict[str, Any], inputs: dict[str, Any], uploads: dict[str, Any], user: str, etl: str
) -> str:
    """Dify's refusal of a file variable's value (base_app_generator, file_factory); "" when it is fine."""
    if kind not in FILE_KINDS:
        return ""
    return file_checks.problem(spec, inputs.get(spec["variable"]), kind, uploads=uploads, user=user, etl=etl)


async def _read_parts(request: web.Request) -> tuple[str, list[tuple[str, str, int, str]]]:
    """The `user` field and each file part's (field, name, size, content type), read in chunks (never held whole).
    Two parts named `file` are one field to Dify (werkzeug keeps the first): the second is read and dropped."""
    reader = await request.multipart()
    user, files, seen = "", [], set()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.filename is None:
            if part.name == "user":
                user = (await part.text()).strip()
            continue
        size = 0
        while chunk := await part.read_chunk(READ_CHUNK):
            size += len(chunk)
        if part.name not in seen:
            seen.add(part.name or "")
            files.append((part.name or "", part.filename, size, part.headers.get("Content-Type", "")))
    return user, files


def _answer(name: str, size: int, user: str, content_type: str) -> dict[str, Any]:
    """Dify 1.13.2's FileResponse: 14 keys, nulls included; the preview link is signed (here: a fixed signature)."""
    upload_id = str(uuid.uuid4())
    now = int(time.time())
    mime = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    source_url = f"http://127.0.0.1:5001/files/{upload_id}/file-preview?timestamp={now}&nonce=0&sign=fake"
    return {
        "id": upload_id,
        "name": name,
        "size": size,
        "extension": PurePosixPath(name).suffix.lstrip(".").lower(),
        "mime_type": mime,
        "created_by": str(uuid.uuid5(uuid.NAMESPACE_URL, user)),
        "created_at": now,
        "preview_url": None,
        "source_url": source_url,
        "original_url": None,
        "user_id": None,
        "tenant_id": TENANT_ID,
        "conversation_id": None,
        "file_key": None,
    }


def _failure(status: int) -> web.Response:
    if status in (502, 503, 504):
        return web.Response(status=status, text=f"<html><body>{status}</body></html>", content_type="text/html")
    code, message = DIFY_UPLOAD_ERRORS.get(status, ("internal_server_error", "fake upload failure"))
    return wire.error(status, code, message)
