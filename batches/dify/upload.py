"""POST /v1/files/upload: one file, streamed from disk as multipart/form-data, never read whole into memory.

Part of the Dify client: `upload(client, ...)` guards it like a call (the client's deadline, allowed hosts, error
types, the key masked); kept apart so that the client module does not grow. Dify answers 201 with `id`, `name`, `size`,
`extension`, `mime_type`, `created_by`, `created_at`; the `id` is what a `local_file` mapping's `upload_file_id` names.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from batches.choices import ErrorType
from batches.db.crypto import is_unreadable
from batches.dify import sse
from batches.dify.types import UNREADABLE_KEY_ERROR, AppSettings, BadResponse, CallResult
from batches.imports import file_types, strictjson

if TYPE_CHECKING:
    from batches.dify.client import DifyClient

CHUNK = 256 * 1024
ESCAPES = {'"': "%22", "\r": "%0D", "\n": "%0A"}  # as browsers (and httpx) write a multipart filename


class MultipartFile:
    """A multipart body holding the `user` field and one file, read from disk as it is sent."""

    def __init__(self, path: Path, filename: str, user: str) -> None:
        self.path, self.size = path, path.stat().st_size
        self.boundary = uuid.uuid4().hex
        quoted = "".join(ESCAPES.get(char, char) for char in filename)
        mime = file_types.upload_mime(filename)  # Dify types the file by it when its extension says nothing
        self.head = (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="user"\r\n\r\n{user}\r\n'
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
            f"Content-Type: {mime}\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def headers(self) -> dict[str, str]:
        length = len(self.head) + self.size + len(self.tail)
        return {"Content-Type": f"multipart/form-data; boundary={self.boundary}", "Content-Length": str(length)}

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.head
        left = self.size
        with self.path.open("rb") as f:
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"{self.path.name} shrank while it was being uploaded")
                left -= len(chunk)
                yield chunk
        yield self.tail


async def upload(client: DifyClient, app: AppSettings, path: Path, *, filename: str, user: str) -> CallResult:
    """Upload one file; outputs: Dify's answer. Never raises for upstream trouble (like `DifyClient.run`)."""
    result = CallResult(ok=False)
    if is_unreadable(app.api_key):
        return result.fail(ErrorType.AUTH, UNREADABLE_KEY_ERROR)
    try:
        body = MultipartFile(path, filename, user)
    except OSError as exc:
        return result.fail(ErrorType.INVALID_INPUT, f"the file cannot be read: {exc.strerror}")
    return await client._guarded(app, result, post_file(client, app, result, body))


async def post_file(client: DifyClient, app: AppSettings, result: CallResult, body: MultipartFile) -> None:
    """Send the body; fill `result` (outputs: Dify's answer) or classify the refusal into it."""
    from batches.dify.client import _headers, _timeout

    headers = {**_headers(app), **body.headers}
    url = app.base_url.rstrip("/") + "/files/upload"
    timeout = _timeout(app)
    async with client._http.stream("POST", url, content=body.chunks(), headers=headers, timeout=timeout) as response:
        result.http_status = response.status_code
        if not await client._check_status(response, result, app):
            return
        raw = await sse.read(response, client.max_response_bytes)
    answer = strictjson.object_of(raw)
    if answer is None or not isinstance(answer.get("id"), str) or not answer["id"]:
        raise BadResponse("upload answer without a file id", raw)
    result.ok, result.outputs, result.upstream_status = True, answer, "uploaded"
