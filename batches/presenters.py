"""How things read on the staff pages and in the admin: small formatting shared by both."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.formats import time_format
from django.utils.translation import gettext

from batches.selectors import Upstream


def waiting_message(upstream: Upstream, now: datetime | None = None) -> str:
    """ "Waiting for Dify since 12:03 — last error: HTTP 502 …, next check in 8 s", or "" while it answers."""
    if not upstream.waiting or upstream.since is None:
        return ""
    since = time_format(timezone.localtime(upstream.since), "H:i")
    if upstream.next_probe_at is None or upstream.state == "half_open":
        return gettext("Waiting for Dify since %(since)s — last error: %(error)s; checking now") % {
            "since": since,
            "error": upstream.last_error,
        }
    seconds = max(0, round((upstream.next_probe_at - (now or timezone.now())).total_seconds()))
    return gettext("Waiting for Dify since %(since)s — last error: %(error)s; next check in %(seconds)s s") % {
        "since": since,
        "error": upstream.last_error,
        "seconds": seconds,
    }
