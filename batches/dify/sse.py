"""Server-Sent Events: Dify's streaming answers, decoded incrementally with bounded memory, and the body
readers that keep every answer within its size cap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx

from batches.dify.answers import StreamState
from batches.dify.types import STREAM_FACTOR, BadResponse


class SSEDecoder:
    """Incremental Server-Sent Events decoder: feed bytes, get (event, data) for each complete frame."""

    def __init__(self, max_frame: int | None = None) -> None:
        self._partial: list[bytes] = []  # pieces of a line not ended yet (kept apart: joining each time is slow)
        self._event = ""
        self._data: list[bytes] = []
        self._max_frame = max_frame  # bytes one frame may hold (memory stays bounded whatever the stream)
        self._frame = 0

    def feed(self, chunk: bytes) -> Iterator[tuple[str, str]]:
        self._frame += len(chunk)
        if self._max_frame is not None and self._frame > self._max_frame:
            raise BadResponse(f"stream event larger than {self._max_frame} bytes")
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            self._partial.append(chunk)
            return
        lines[0] = b"".join([*self._partial, lines[0]])
        self._partial = [lines.pop()]
        for line in lines:
            yield from self._line(line.rstrip(b"\r"))

    def flush(self) -> Iterator[tuple[str, str]]:
        """A last frame not followed by a blank line (a stream that ends right after it)."""
        rest = b"".join(self._partial)
        self._partial = []
        if rest:
            yield from self._line(rest.rstrip(b"\r"))
        yield from self._line(b"")

    def _line(self, line: bytes) -> Iterator[tuple[str, str]]:
        if not line:
            if self._data or self._event:
                yield self._event or "message", _utf8(b"\n".join(self._data))
            self._event, self._data = "", []
            self._frame = sum(map(len, self._partial))
            return
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = _utf8(value)


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadResponse(f"stream event is not valid UTF-8 (byte {exc.start})") from None


async def consume(response: httpx.Response, state: StreamState, max_bytes: int) -> None:
    """Follow a stream until its finishing event."""
    # The cap counts what is kept (answer text, the finishing event), not node events streaming past: Dify
    # does not truncate node payloads, so a long-text run streams its text several times over. The stream as a
    # whole may carry STREAM_FACTOR times the cap (an endless stream still ends).
    decoder = SSEDecoder(max_frame=2 * max_bytes)
    state.max_kept = max_bytes
    chunks = capped(response, STREAM_FACTOR * max_bytes)
    async for chunk in chunks:
        for sse_event, data in decoder.feed(chunk):
            state.handle(sse_event, data)
            if state.done:
                await _drain(chunks)
                return
    for sse_event, data in decoder.flush():
        state.handle(sse_event, data)
    if not state.done:
        finish = "workflow_finished" if state.mode == "workflow" else "message_end"
        raise BadResponse(f"stream ended before {finish}")


async def read(response: httpx.Response, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes."""
    return b"".join([chunk async for chunk in capped(response, limit)])


async def capped(response: httpx.Response, limit: int) -> AsyncIterator[bytes]:
    """Body chunks, counting bytes as they arrive; more than `limit` is a BadResponse."""
    seen = 0
    async for chunk in response.aiter_bytes():
        seen += len(chunk)
        if seen > limit:
            raise BadResponse(f"answer larger than {limit} bytes")
        yield chunk


async def error_page(response: httpx.Response, limit: int = 65536) -> bytes:
    """The start of an error answer: enough to read its code and message."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows the finishing event for a moment, so that the connection can be reused."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(0.05):
            async for _ in chunks:
                pass
