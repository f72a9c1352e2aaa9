"""A tiny HTTP server that replays recorded Dify answers (tests/dify/recordings/) over a real socket.

Each request gets the recording's status, headers and body chunks, byte for byte, each chunk written when the
recording read it (times multiplied by `scale`, so that a 300 s silence can be replayed in seconds), then the
recording's end: close at once, or hold the connection open and silent first. Streams go out chunked (as
gunicorn sends them), other answers with their Content-Length.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The project's own copy of the real Dify answers (runs: run answers; files: uploads and file inputs): a clone
# anywhere has them. `python scripts/recordings.py` says when the copy drifts from the sets it was taken from.
RECORDED = Path(__file__).resolve().parent / "dify" / "recordings"
RECORDINGS = Path(os.environ.get("DIFY_REAL_DIR", RECORDED / "runs"))
FILE_RECORDINGS = RECORDED / "files"


def recordings() -> list[Path]:
    return sorted(RECORDINGS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


@dataclass
class Replay:
    """What the server answers and what it was asked."""

    case: dict[str, Any]
    scale: float
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, sock: socket.socket) -> None:
        started = time.monotonic()
        case = self.case
        delay = float(case.get("delay_before_body_s") or 0) * self.scale
        time.sleep(delay)
        chunks = [chunk.encode("utf-8") for chunk in case["body_chunks"]]
        streamed = "text/event-stream" in str(case["headers"].get("Content-Type", ""))
        sock.sendall(self._head(streamed, sum(map(len, chunks))))
        times = case.get("chunk_times_s") or [0.0] * len(chunks)
        for chunk, at in zip(chunks, times, strict=False):
            time.sleep(max(0.0, started + delay + at * self.scale - time.monotonic()))
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if streamed else chunk)
        after = case.get("after_body", "close")
        if isinstance(after, dict):
            time.sleep(float(after.get("hold_open_s", 0)) * self.scale)
        if streamed:
            sock.sendall(b"0\r\n\r\n")

    def _head(self, streamed: bool, length: int) -> bytes:
        status = int(self.case["status"])
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in self.case["headers"].items()]
        lines += ["Transfer-Encoding: chunked" if streamed else f"Content-Length: {length}", "Connection: close"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 404: "NOT FOUND"}


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        request = _read_request(self.request)
        if request is None:
            return
        self.server.replay.requests.append(request)
        with contextlib.suppress(OSError):  # the client gave up (a timeout): what a real server meets too
            self.server.replay.answer(self.request)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    replay: Replay


def _read_request(sock: socket.socket) -> dict[str, Any] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length") or 0)
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return {"method": method, "path": path, "headers": headers, "json": json.loads(body) if body else None}


@contextmanager
def replaying(case: dict[str, Any], scale: float) -> Iterator[tuple[str, Replay]]:
    """Serve `case` on a free port; yields (base URL ending in /v1, the Replay with the requests it got)."""
    replay = Replay(case, scale)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.replay = replay
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", replay
    finally:
        server.shutdown()
        server.server_close()
