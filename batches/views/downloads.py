"""Streamed downloads (exports and comparisons), at most a few at once per user."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import ngettext

from batches.conf import settings
from batches.exports import batches as exporters
from batches.services.exports import SlotStream, give_back_export_slot, take_export_slot

RETRY_AFTER_SECONDS = 30


def streamed(
    request: HttpRequest, chunks: Callable[[], Iterable[bytes]], content_type: str, name: str
) -> HttpResponseBase:
    """The download as a stream holding one of the user's slots, or a 429 when they are all taken. `chunks` runs
    once the slot is held: the work before the first byte (a comparison's pairing) counts too."""
    slot = take_export_slot(user_id=request.user.pk or 0)  # staff only: always signed in
    if slot is None:
        return _too_many()
    try:
        stream = SlotStream(chunks(), slot)
    except BaseException:
        give_back_export_slot(slot)
        raise
    response = StreamingHttpResponse(stream, content_type=content_type)
    response["Content-Disposition"] = exporters.attachment(name)
    return response


def _too_many() -> HttpResponse:
    limit = settings.BATCHES_MAX_EXPORTS_PER_USER
    text = ngettext(
        "You already have %(limit)s export running. Wait for it to finish, then try again.",
        "You already have %(limit)s exports running. Wait for one to finish, then try again.",
        limit,
    ) % {"limit": limit}
    response = HttpResponse(text, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
