"""A Dify stand-in that records the Authorization header of every request it gets (issue 27, H1).

Two of them on two ports play "the attacker's server" and "the real Dify", or "the old Dify" and "the new one".
It answers GET /v1/parameters and a blocking POST /v1/workflows/run as Dify would, anything else 404.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PARAMETERS = {"user_input_form": [{"text-input": {"variable": "text", "label": "text", "required": False}}]}


class KeyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, str]] = []  # (method, path, Authorization)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"

    def bearers(self) -> set[str]:
        return {auth.removeprefix("Bearer ") for _method, _path, auth in self.seen}


class _Handler(BaseHTTPRequestHandler):
    server: KeyServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _record(self) -> None:
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization", "")))

    def do_GET(self) -> None:
        self._record()
        if self.path.startswith("/v1/parameters"):
            self._answer(200, PARAMETERS)
        else:
            self._answer(404, {"code": "not_found", "message": "Not found", "status": 404})

    def do_POST(self) -> None:
        self._record()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path.startswith("/v1/workflows/run"):
            run_id = str(uuid.uuid4())
            data = {"id": run_id, "status": "succeeded", "outputs": {"echo": body.get("inputs")}, "error": None}
            self._answer(200, {"task_id": str(uuid.uuid4()), "workflow_run_id": run_id, "data": data})
        else:
            self._answer(404, {"code": "not_found", "message": "Not found", "status": 404})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@contextmanager
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
