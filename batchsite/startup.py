"""Refuse to start a command or a server that would run production on public secrets."""

from __future__ import annotations

import sys


def require_secret_key() -> None:
    """Exit with a one-line error while DEBUG is off and DJANGO_SECRET_KEY is unset or the development default.

    With the public default, sessions could be forged and (without BATCHES_ENCRYPTION_KEY) every stored API key
    decrypted by anyone holding the database.
    """
    from django.conf import settings

    from batchsite.settings import DEV_SECRET_KEY

    if not settings.DEBUG and settings.SECRET_KEY == DEV_SECRET_KEY:
        sys.exit(
            "DJANGO_SECRET_KEY is not set (or is the public development default): set it to a long random value, "
            "or set DJANGO_DEBUG=1 for development"
        )


def require_static_manifest() -> None:
    """Exit with a one-line error while DEBUG is off and collectstatic has not run (every page would be a 500)."""
    import django

    django.setup(set_prefix=False)
    from batches.checks import missing_static_manifest

    missing = missing_static_manifest()
    if missing:
        sys.exit(missing.msg)
