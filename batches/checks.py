"""`manage.py check --deploy` messages about this app's own production settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Error as CheckError
from django.core.checks import Warning as CheckWarning

from batches.conf import settings

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


def missing_static_manifest() -> CheckError | None:
    """With DEBUG off every page links hashed static names, read from collectstatic's manifest: without it every
    page (the admin's login included) would be a 500, so a web process refuses to start instead."""
    storage: Any = staticfiles_storage  # a lazy object: isinstance sees the configured storage's class
    if django_settings.DEBUG or not isinstance(staticfiles_storage, ManifestFilesMixin):
        return None
    if (storage.manifest_storage or storage).exists(storage.manifest_name):
        return None
    return CheckError(
        f"No static files manifest in {django_settings.STATIC_ROOT}: run `python manage.py collectstatic` before "
        "starting the web server with DEBUG off.",
        id="batches.E001",
    )


@register(Tags.staticfiles, deploy=True)
def check_static_manifest(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    missing = missing_static_manifest()
    return [missing] if missing else []
