"""A file as Dify itself sees it (1.13.2; ../shared/dify-real-files/): its type, and what its upload refuses.

Dify's Service API checks a file mapping strictly: the `type` sent must equal the type Dify detects (its
extension tables in api/constants, then the MIME type: factories/file_factory.py), so the type is never chosen
from what the app allows, only detected, and a file the app cannot take is refused at import. Its upload
(services/file_service.py) refuses a name holding `/ \\ : * ? " < > |`, an operator's blacklisted extension, and
sizes over a limit per kind. The extensions the server's ETL takes as documents, the limits and the blacklist
are settings mirroring the server's (BATCHES_DIFY_*).
"""

from __future__ import annotations

import ipaddress
import mimetypes
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from batches.conf import settings

IMAGE = frozenset({"jpg", "jpeg", "png", "webp", "gif", "svg"})
VIDEO = frozenset({"mp4", "mov", "mpeg", "webm"})
AUDIO = frozenset({"mp3", "m4a", "wav", "amr", "mpga"})
CUSTOM = "custom"
FORBIDDEN = re.compile(r'[/\\:*?"<>|]')  # file_service.upload_file's "Filename contains invalid characters"
MB = 1024 * 1024


@dataclass(frozen=True)
class Detected:
    """What Dify makes of a file: its type and the extension (".pdf") a `custom` allow-list is matched against.
    `type` is "" when only the URL's server can tell (Dify asks it with HEAD)."""

    type: str
    extension: str


def document_extensions() -> frozenset[str]:
    return frozenset(name.strip().lower().lstrip(".") for name in settings.BATCHES_DIFY_DOCUMENT_EXTENSIONS)


def _in(extension: str, names: frozenset[str]) -> bool:
    """Dify's tables hold each extension in lower and in upper case, nothing else ("Pdf" is in none)."""
    return extension in names or (extension.isupper() and extension.lower() in names)


def by_extension(extension: str) -> str:
    extension = extension.lstrip(".")
    tables = (("image", IMAGE), ("video", VIDEO), ("audio", AUDIO), ("document", document_extensions()))
    return next((kind for kind, names in tables if _in(extension, names)), "")


def by_mime(mime: str) -> str:
    """file_factory._get_file_type_by_mimetype: substrings, in this order."""
    for kind in ("image", "video", "audio"):
        if kind in mime:
            return kind
    return "document" if "text" in mime or "pdf" in mime else CUSTOM


def upload_mime(name: str) -> str:
    """The Content-Type an upload of `name` is sent with (batches/dify/upload.py): Dify keeps it as the file's."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def extension_of(name: str) -> str:
    """The extension Dify stores for an upload: lower case, with its dot ("" for none)."""
    suffix = PurePosixPath(name).suffix.lower()
    return suffix if len(suffix) > 1 else ""


def of_upload(name: str) -> Detected:
    extension = extension_of(name)
    return Detected(by_extension(extension) or by_mime(upload_mime(name)), extension)


def of_url(url: str) -> Detected:
    """file_factory._get_remote_file_info and _build_from_remote_url: the name is the URL's last segment, its MIME
    type guessed from that name (else the HEAD's Content-Type), its extension guessed from the MIME type."""
    filename = url.split("/")[-1].split("?")[0] or "unknown_file"
    mime = mimetypes.guess_type(filename)[0] or ""
    if "." not in filename:
        return Detected(by_mime(mime) if mime else "", ".bin")
    extension = (mimetypes.guess_extension(mime) if mime else None) or "." + filename.split(".")[-1]
    return Detected(by_extension(extension) or (by_mime(mime) if mime else ""), extension)


def private_host(url: str) -> bool:
    """A URL Dify's SSRF proxy (squid, as Docker deploys it) refuses to fetch: localhost or a private, loopback or
    link-local address; False when BATCHES_DIFY_FETCHES_PRIVATE_URLS says the server fetches them."""
    if settings.BATCHES_DIFY_FETCHES_PRIVATE_URLS:
        return False
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: what it resolves to is the proxy's to judge
    return address.is_private or address.is_loopback or address.is_link_local or address.is_unspecified


def size_limit(name: str) -> int:
    """FileService.is_file_size_within_limit: by extension, images, video, audio, and everything else."""
    extension = extension_of(name).lstrip(".")
    for names, limit in (
        (IMAGE, settings.BATCHES_DIFY_IMAGE_SIZE_LIMIT_MB),
        (VIDEO, settings.BATCHES_DIFY_VIDEO_SIZE_LIMIT_MB),
        (AUDIO, settings.BATCHES_DIFY_AUDIO_SIZE_LIMIT_MB),
    ):
        if extension in names:
            return int(limit * MB)
    return int(settings.BATCHES_DIFY_FILE_SIZE_LIMIT_MB * MB)


def upload_refusal(name: str, size: int) -> str:
    """Why Dify's upload would refuse this file ("" if it would not); the name is sent made safe (`safe_name`)."""
    extension = extension_of(name).lstrip(".")
    blacklist = {item.strip().lower().lstrip(".") for item in settings.BATCHES_DIFY_UPLOAD_EXTENSION_BLACKLIST}
    if extension and extension in blacklist:
        return f"has the extension .{extension}, which the server refuses (BATCHES_DIFY_UPLOAD_EXTENSION_BLACKLIST)"
    limit = size_limit(name)
    if size > limit:
        return f"is {size / MB:.1f} MB, over the server's {limit / MB:g} MB limit for such files"
    return ""


def safe_name(name: str) -> str:
    """The name an upload is sent under: the member's base name, with the characters Dify refuses replaced."""
    return FORBIDDEN.sub("_", PurePosixPath(name).name) or "file"
