"""Slots of the downloads a user streams at once (exports and comparisons): taken before the stream starts,
given back when it ends or the client goes away."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from batches.conf import settings
from batches.models import ExportSlot


def take_export_slot(*, user_id: int) -> int | None:
    """A slot's id, or None when the user already streams as many downloads as allowed. The user's row is locked
    for the count and the insert, so that two requests at once cannot both take the last slot."""
    stale = timezone.now() - timedelta(seconds=settings.BATCHES_EXPORT_SLOT_SECONDS)
    with transaction.atomic():
        list(get_user_model().objects.select_for_update().filter(pk=user_id).values_list("pk", flat=True))
        ExportSlot.objects.filter(user_id=user_id, started_at__lt=stale).delete()  # its process died mid-stream
        if ExportSlot.objects.filter(user_id=user_id).count() >= settings.BATCHES_MAX_EXPORTS_PER_USER:
            return None
        return ExportSlot.objects.create(user_id=user_id).pk


def give_back_export_slot(slot_id: int) -> None:
    ExportSlot.objects.filter(pk=slot_id).delete()


class SlotStream:
    """A download's chunks that give back its slot once the server closes the response (at the end of the stream,
    or when the client went away): Django calls `close()` of the streamed object then."""

    def __init__(self, chunks: Iterable[bytes], slot_id: int) -> None:
        self.chunks, self.slot_id = chunks, slot_id

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        try:
            if close is not None:
                close()
        finally:
            give_back_export_slot(self.slot_id)
