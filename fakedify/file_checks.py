"""Dify 1.13.2's checks of a run's file inputs (base_app_generator._validate_inputs, factories/file_factory.py), with
its messages: a file-list's count, each mapping's transfer method and id, the strict type check of the Service API
(the `type` sent must equal the type Dify detects from the extension, then the MIME type) and the variable's
config. A URL is never fetched: the fake types it as Dify does when its HEAD does not answer 200.

Written apart from the client's own detection (batches/dify/file_types.py), so that a test against the fake can catch
the client typing a file differently from Dify.
"""

from __future__ import annotations

import mimetypes
import uuid
from typing import Any

IMAGE = {"jpg", "jpeg", "png", "webp", "gif", "svg"}
VIDEO = {"mp4", "mov", "mpeg", "webm"}
AUDIO = {"mp3", "m4a", "wav", "amr", "mpga"}
DEFAULT_DOCUMENTS = {"txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "docx", "csv", "vtt"}
DEFAULT_DOCUMENTS |= {"properties"}
UNSTRUCTURED_DOCUMENTS = DEFAULT_DOCUMENTS | {"doc", "eml", "msg", "pptx", "xml", "epub", "ppt"}
METHODS = ("local_file", "remote_url", "tool_file", "datasource_file")
TYPE_MISMATCH = "Detected file type does not match the specified type. Please verify the file."


def problem(spec: dict[str, Any], value: Any, kind: str, *, uploads: dict[str, Any], user: str, etl: str) -> str:
    """Dify's refusal of one file or file-list variable's value; "" when it is fine (or empty)."""
    name = spec["variable"]
    if value in (None, ""):
        return ""
    if kind == "file":
        if not isinstance(value, dict):
            return f"{name} in input form must be a file"
        return mapping_problem(value, spec, uploads=uploads, user=user, etl=etl)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return f"{name} in input form must be a list of files"
    if spec.get("max_length") and len(value) > spec["max_length"]:
        return f"{name} in input form must be less than {spec['max_length']} files"
    complete = [item for item in value if _complete(item)]  # build_from_mappings drops the others silently
    found = (mapping_problem(item, spec, uploads=uploads, user=user, etl=etl) for item in complete)
    return next((p for p in found if p), "")


def _complete(mapping: dict[str, Any]) -> bool:
    method = mapping.get("transfer_method")
    if method == "remote_url":
        return bool(mapping.get("url") or mapping.get("remote_url") or mapping.get("upload_file_id"))
    return method == "local_file" and bool(mapping.get("upload_file_id"))


def mapping_problem(
    mapping: dict[str, Any], spec: dict[str, Any], *, uploads: dict[str, Any], user: str, etl: str
) -> str:
    method = mapping.get("transfer_method")
    if method is None:
        return "transfer_method is required in file mapping"
    if method not in METHODS:
        return f"No matching enum found for value '{method}'"
    if method == "local_file":
        found = _upload(mapping, uploads, user)
        if isinstance(found, str):
            return found
        filename, extension = found["name"], "." + found["extension"]
        detected = detect(extension, found["mime_type"], etl)
    elif method == "remote_url":
        url = mapping.get("url") or mapping.get("remote_url")
        if not url:
            return "Invalid file url"
        filename, extension, detected = remote(str(url), etl)
    else:
        return f"{method} is not a method a batch can use"
    if mapping.get("type", "custom") != detected:
        return TYPE_MISMATCH
    return "" if valid(detected, extension, method, spec) else f"File validation failed for file: {filename}"


def _upload(mapping: dict[str, Any], uploads: dict[str, Any], user: str) -> dict[str, Any] | str:
    upload_id = mapping.get("upload_file_id")
    if not upload_id:
        return "Invalid upload file id"
    try:
        uuid.UUID(str(upload_id))
    except ValueError:
        return "Invalid upload file id format"
    found = uploads.get(str(upload_id))
    if found is None or (user and found.get("_scoped") and found.get("_user") != user):
        return "Invalid upload file"
    return dict(found)


def detect(extension: str, mime: str, etl: str) -> str:
    """_standardize_file_type: the extension's table (lower or upper case), else the MIME type's words."""
    bare = extension.lstrip(".")
    documents = UNSTRUCTURED_DOCUMENTS if etl == "unstructured" else DEFAULT_DOCUMENTS
    for kind, names in (("image", IMAGE), ("video", VIDEO), ("audio", AUDIO), ("document", documents)):
        if bare in names or (bare.isupper() and bare.lower() in names):
            return kind
    for kind in ("image", "video", "audio"):
        if kind in mime:
            return kind
    return "document" if "text" in mime or "pdf" in mime else "custom"


def remote(url: str, etl: str) -> tuple[str, str, str]:
    """(file name, extension, detected type) of a URL whose HEAD did not answer 200."""
    filename = url.split("/")[-1].split("?")[0] or "unknown_file"
    mime = mimetypes.guess_type(filename)[0] or ""
    extension = (
        ((mimetypes.guess_extension(mime) if mime else None) or "." + filename.split(".")[-1])
        if "." in filename
        else ".bin"
    )
    return filename, extension, detect(extension, mime, etl)


def valid(kind: str, extension: str, method: str, spec: dict[str, Any]) -> bool:
    """_is_file_valid_with_config; a Start variable has no image config, so an image's method is not checked."""
    allowed = spec.get("allowed_file_types") or []
    if allowed and kind not in allowed and kind != "custom":
        return False
    if kind == "custom" and extension not in (spec.get("allowed_file_extensions") or []):
        return False
    methods = spec.get("allowed_file_upload_methods") or []
    return kind == "image" or not methods or method in methods
