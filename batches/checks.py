"""`manage.py check --deploy` warnings about this app's own security settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

NO_ENCRYPTION_KEY = CheckWarning(
    "BATCHES_ENCRYPTION_KEY is not set: the stored API keys are encrypted with a key derived from SECRET_KEY, so "
    "whoever learns SECRET_KEY can decrypt them.",
    hint="Set BATCHES_ENCRYPTION_KEY to a Fernet key of its own (see the README's Security section).",
    id="batches.W001",
)
ANY_UPSTREAM_HOST = CheckWarning(
    "BATCHES_ALLOWED_UPSTREAM_HOSTS is not set: whoever may edit a workflow can point it at any host this server "
    "reaches (internal services included).",
    hint="List the Dify hosts (names, *.domain or CIDR ranges) in BATCHES_ALLOWED_UPSTREAM_HOSTS.",
    id="batches.W002",
)


@register(Tags.security, deploy=True)
def check_security_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    warnings: list[CheckMessage] = []
    if not settings.BATCHES_ENCRYPTION_KEY:
        warnings.append(NO_ENCRYPTION_KEY)
    if not settings.BATCHES_ALLOWED_UPSTREAM_HOSTS:
        warnings.append(ANY_UPSTREAM_HOST)
    return warnings
