"""A webhook receiver for the tests: an HTTP server on 127.0.0.1 that checks signatures as a receiver would."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    secret: str
    url: str = ""
    answers: list[int] = field(default_factory=list)  # statuses to answer in turn; then 200
    hang: threading.Event | None = None  # requests wait until it is set (a receiver that does not answer)
    received: list[dict[str, Any]] = field(default_factory=list)
    seen: threading.Event = field(default_factory=threading.Event)

    def verified(self, raw: bytes, header: str) -> bool:
        """What a receiver does: HMAC-SHA256 of the raw body under the shared secret, compared in constant time."""
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, header)

    def events(self) -> list[str]:
        return [item["event"] for item in self.received]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.seen.set()
            if receiver.hang is not None:
                receiver.hang.wait(30)
            status = receiver.answers.pop(0) if receiver.answers else 200
            if status == 200:
                receiver.received.append(
                    {
                        "event": self.headers["X-Batches-Event"],
                        "signed": receiver.verified(raw, self.headers.get("X-Batches-Signature", "")),
                        "body": json.loads(raw),
                    }
                )
            with suppress(OSError):  # a sender killed mid-request is gone
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(secret: str = "s3cret", **fields: Any) -> Iterator[Receiver]:
    receiver = Receiver(secret=secret, **fields)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hang is not None:
            receiver.hang.set()
        server.shutdown()
        server.server_close()
