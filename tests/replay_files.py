"""A replay of Dify's answers about files (tests/dify/recordings/files/) as one app: GET /parameters declares the
case's variables, each upload and each run gets the next answer the case's `replay` names (see the recordings'
README: "self", another case, an inline answer, or `if_sent` conditions on what the client really sent).

Answers are written by tests/replay.py's Replay, byte for byte. The requests are kept: path, JSON body, and for an
upload its file name, `user` field and file size (the bytes themselves are not kept).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.replay import FILE_RECORDINGS, Replay, load

MISSING = object()
DEFAULT_FORM = [
    {
        "file": {
            "variable": "doc", "label": "doc", "type": "file", "required": True, "hide": False, "default": None,
            "allowed_file_types": ["document"], "allowed_file_extensions": [],
            "allowed_file_upload_methods": ["local_file", "remote_url"], "max_length": 48,
        }
    },
    {
        "file-list": {
            "variable": "docs", "label": "docs", "type": "file-list", "required": False, "hide": False,
            "default": None, "allowed_file_types": ["document"], "allowed_file_extensions": [],
            "allowed_file_upload_methods": ["local_file", "remote_url"], "max_length": 3,
        }
    },
]  # fmt: skip
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "missing": lambda v: v is MISSING,
    "null": lambda v: v is None,
}
KINDS = {"/v1/files/upload": "upload", "/v1/workflows/run": "run"}


def case_named(name: str) -> dict[str, Any]:
    return load(FILE_RECORDINGS / f"{name}.json")


def form_of(case: dict[str, Any]) -> list[dict[str, Any]]:
    return list(case.get("user_input_form") or DEFAULT_FORM)


def kind_of(case: dict[str, Any]) -> str:
    return KINDS.get(case["request"]["path"], "other")


@dataclass
class FilesApp:
    """What the replayed app answers, and what it was asked (`served`: for each request, whether an `else`
    answer was given, i.e. the client did not send what provokes the recorded refusal)."""

    case: dict[str, Any]
    requests: list[dict[str, Any]] = field(default_factory=list)
    served_else: list[bool] = field(default_factory=list)

    def answers(self, kind: str) -> list[Any]:
        replay = self.case.get("replay") or {}
        if kind in replay:
            return list(replay[kind])
        return ["self"] if kind == kind_of(self.case) else []

    def answer_for(self, request: dict[str, Any]) -> dict[str, Any]:
        kind = KINDS.get(request["path"].split("?")[0], "other")
        if request["method"] == "GET" and request["path"].startswith("/v1/parameters"):
            return _json_answer(
                200, {"user_input_form": form_of(self.case), "file_upload": {}, "system_parameters": {}}
            )
        answers = self.answers(kind)
        if not answers:
            return _json_answer(404, {"code": "not_found", "message": "not replayed", "status": 404})
        asked = sum(1 for r in self.requests[:-1] if KINDS.get(r["path"].split("?")[0]) == kind)
        return self.resolve(answers[min(asked, len(answers) - 1)], request)

    def resolve(self, answer: Any, request: dict[str, Any]) -> dict[str, Any]:
        if answer == "self":
            return self.case
        if isinstance(answer, str):
            return case_named(answer)
        if "if_sent" in answer:
            sent = all(holds(condition, request) for condition in answer["if_sent"])
            self.served_else.append(not sent)
            return self.resolve(answer["answer"] if sent else answer["else"], request)
        return dict(answer)

    @property
    def else_served(self) -> bool:
        return any(self.served_else)

    def count(self, kind: str) -> int:
        return sum(1 for r in self.requests if KINDS.get(r["path"].split("?")[0]) == kind)


def holds(condition: dict[str, Any], request: dict[str, Any]) -> bool:
    value = value_at(request, condition["at"])
    if "type" in condition:
        return bool(TYPES[condition["type"]](value))
    if "matches" in condition:
        return value is not MISSING and re.search(condition["matches"], str(value)) is not None
    if "not_matches" in condition:
        return value is MISSING or re.search(condition["not_matches"], str(value)) is None
    raise ValueError(f"unknown condition {condition}")


def value_at(request: dict[str, Any], at: str) -> Any:
    if at in ("filename", "user", "bytes"):
        return (request.get("upload") or {}).get(at, MISSING)
    node: Any = request.get("json")
    for part in at.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def _json_answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": status,
        "headers": {"Content-Type": "application/json"},
        "body_chunks": [json.dumps(body)],
        "after_body": "close",
    }


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        request = read_request(self.request)
        if request is None:
            return
        app = self.server.app
        app.requests.append(request)
        with contextlib.suppress(OSError):
            Replay(app.answer_for(request), 1.0).answer(self.request)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: FilesApp


def read_request(sock: socket.socket) -> dict[str, Any] | None:
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
    body = _read_body(sock, body, headers)
    request: dict[str, Any] = {"method": method, "path": path, "headers": headers, "json": None}
    content_type = headers.get("content-type", "")
    if content_type.startswith("multipart/"):
        request["upload"] = _multipart(body, content_type)
    elif body:
        request["json"] = json.loads(body)
    return request


def _read_body(sock: socket.socket, body: bytes, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while not body.endswith(b"0\r\n\r\n"):
            more = sock.recv(65536)
            if not more:
                break
            body += more
        return _unchunk(body)
    length = int(headers.get("content-length") or 0)
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return body


def _unchunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if not size:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def _multipart(body: bytes, content_type: str) -> dict[str, Any]:
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    found: dict[str, Any] = {}
    for part in body.split(b"--" + boundary)[1:]:
        head, _, content = part.partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        if filename:
            found.update(filename=filename.group(1), bytes=len(content))
        elif name and name.group(1) == "user":
            found["user"] = content.decode("utf-8", "replace")
    return found


@contextmanager
def serving(case: dict[str, Any]) -> Iterator[tuple[str, FilesApp]]:
    """Serve `case` as an app on a free port; yields (base URL ending in /v1, the app with what it was asked)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.app = FilesApp(case)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.app
    finally:
        server.shutdown()
        server.server_close()
