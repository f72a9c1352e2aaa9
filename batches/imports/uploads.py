"""A file uploaded for a new batch, kept in a private temporary folder between the preview and the import.

The session holds only a random token naming the file; a new upload replaces the previous one, and uploads
abandoned on the preview page are swept after a day.
"""

from __future__ import annotations

import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.http import HttpRequest

SESSION_KEY = "batches_upload"
MAX_AGE = 24 * 3600  # seconds an abandoned upload is kept


@dataclass(frozen=True)
class Upload:
    token: str
    filename: str
    workflow_id: int
    chosen: dict[str, str] | None = None  # the column mapping staff chose on the preview (None: not yet)

    @property
    def path(self) -> Path:
        return uploads_dir() / self.token


def uploads_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "batches-uploads"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def current(request: HttpRequest) -> Upload | None:
    """The upload this session is previewing, if its file is still there."""
    data = request.session.get(SESSION_KEY)
    if not isinstance(data, dict) or not re.fullmatch(r"[0-9a-f]{32}", str(data.get("token", ""))):
        return None
    chosen = data.get("mapping")
    chosen = {str(k): str(v) for k, v in chosen.items()} if isinstance(chosen, dict) else None
    upload = Upload(data["token"], str(data.get("filename", "")), int(data.get("workflow", 0)), chosen)
    return upload if upload.path.is_file() else None


def choose(request: HttpRequest, chosen: dict[str, str]) -> None:
    """Keep the column mapping chosen on the preview for this session's upload."""
    data = request.session.get(SESSION_KEY)
    if isinstance(data, dict):
        request.session[SESSION_KEY] = {**data, "mapping": chosen}


def store(request: HttpRequest, uploaded: Any, *, workflow_id: int) -> None:
    """Keep `uploaded` (a Django UploadedFile) for this session, replacing its previous upload."""
    discard(request)
    sweep()
    token = secrets.token_hex(16)
    with (uploads_dir() / token).open("wb") as f:
        for chunk in uploaded.chunks():
            f.write(chunk)
    request.session[SESSION_KEY] = {"token": token, "filename": uploaded.name, "workflow": workflow_id}


def discard(request: HttpRequest) -> None:
    upload = current(request)
    if upload is not None:
        for path in uploads_dir().glob(f"{upload.token}*"):  # the file, and what its preview keeps (previews.py)
            path.unlink(missing_ok=True)
    request.session.pop(SESSION_KEY, None)


def sweep() -> None:
    """Remove uploads abandoned on the preview page."""
    cutoff = time.time() - MAX_AGE
    for path in uploads_dir().iterdir():
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
