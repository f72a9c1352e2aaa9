"""The body of POST /v1/files/upload: one file, streamed from disk as multipart/form-data, never read whole into memory.

`DifyClient.upload` sends it like a call (the client's deadline, allowed hosts, error types, the key masked). Dify
answers 201 with `id`, `name`, `size`, `extension`, `mime_type`, `created_by`, `created_at`; the `id` is what a
`local_file` mapping's `upload_file_id` names.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from batches.dify import file_types

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
