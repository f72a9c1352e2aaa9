"""Sending one notification: the webhook POST (signed) and the email. No database access here.

The webhook contract (design.md): `POST` JSON with `X-Batches-Event: batch.<event>` and `X-Batches-Signature:
sha256=<hex HMAC-SHA256 of the raw body under the workflow's webhook secret>`; any 2xx is delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
from django.conf import settings as django_settings
from django.core.mail import EmailMessage
from django.utils import translation
from django.utils.translation import gettext

from batches.conf import settings
from batches.dify import hosts

ANSWER_CHARS = 200


class DeliveryFailed(Exception):
    """The receiver did not take the message; str(error) is the one-line answer kept on the outbox row."""


def body(event: str, sent_at: str, batch: dict[str, Any]) -> bytes:
    return json.dumps({"event": f"batch.{event}", "sent_at": sent_at, "batch": batch}, ensure_ascii=False).encode()


def signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def post_webhook(url: str, *, secret: str, event: str, raw: bytes) -> str:
    """POST the body; the answer in a line ("HTTP 204"), or DeliveryFailed. Blocking: never under a lock."""
    try:
        hosts.check_url(url)  # the address it resolves to now, as for every call to Dify
        headers = {
            "Content-Type": "application/json",
            "X-Batches-Event": f"batch.{event}",
            "X-Batches-Signature": signature(secret, raw),
            "User-Agent": "batches-webhook/1",
        }
        with httpx.Client(timeout=settings.BATCHES_NOTIFY_TIMEOUT, follow_redirects=False, trust_env=False) as client:
            response = client.post(url, content=raw, headers=headers)
    except (hosts.UpstreamRefused, ConnectionError, httpx.HTTPError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:ANSWER_CHARS]) from None
    answer = f"HTTP {response.status_code} {response.text[:ANSWER_CHARS]}".strip()
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(answer)
    return answer


def email_text(event: str, batch: dict[str, Any]) -> tuple[str, str]:
    """The subject and body: the batch's name, status and reason, its counts and its link."""
    with translation.override(django_settings.LANGUAGE_CODE):
        subject = gettext('Batch #%(id)s "%(name)s": %(event)s') % {**batch, "event": event}
        lines = [
            gettext("Batch #%(id)s %(name)s is %(status)s.") % batch,
            gettext("Reason: %(reason)s") % batch if batch.get("reason") else "",
            gettext("Rows: %(total)s; succeeded %(succeeded)s, failed %(failed)s, cancelled %(cancelled)s.") % batch,
            gettext("Open it: %(url)s") % batch,
        ]
    return subject, "\n".join(line for line in lines if line) + "\n"


def send_email(recipients: list[str], *, event: str, batch: dict[str, Any]) -> str:
    subject, text = email_text(event, batch)
    try:
        EmailMessage(subject, text, to=recipients).send()
    except Exception as exc:  # SMTP and socket errors alike: the message stays in the outbox and is tried again
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:ANSWER_CHARS]) from None
    return f"sent to {len(recipients)}"
