"""Download slots: a few per user at once, given back on close, forgotten when their process died."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from batches.models import ExportSlot
from batches.services.exports import SlotStream, take_export_slot

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("exporter", is_staff=True)


def test_a_user_takes_at_most_the_limit(user: Any, settings: Any) -> None:
    settings.BATCHES_MAX_EXPORTS_PER_USER = 2

    taken = [take_export_slot(user_id=user.pk) for _ in range(3)]

    assert taken[0] and taken[1] and taken[2] is None


def test_closing_the_stream_gives_the_slot_back_even_before_it_started(user: Any, settings: Any) -> None:
    settings.BATCHES_MAX_EXPORTS_PER_USER = 1
    stream = SlotStream(iter([b"x"]), take_export_slot(user_id=user.pk) or 0)

    stream.close()

    assert take_export_slot(user_id=user.pk) is not None


def test_a_slot_whose_process_died_is_forgotten_after_a_while(user: Any, settings: Any) -> None:
    settings.BATCHES_MAX_EXPORTS_PER_USER = 1
    settings.BATCHES_EXPORT_SLOT_SECONDS = 60
    old = take_export_slot(user_id=user.pk)
    ExportSlot.objects.filter(pk=old).update(started_at=timezone.now() - timedelta(seconds=61))

    assert take_export_slot(user_id=user.pk) is not None
