"""Encryption at rest for secrets (Workflow.api_key): Fernet tokens keyed by settings.

`BATCHES_ENCRYPTION_KEY` is a comma-separated list of Fernet keys, newest first. Values are encrypted with the
first key; any key of the list decrypts. To rotate: put a new key in front, run `manage.py rotate_api_keys`, then
drop the old key. Make a key with
`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.

When the setting is empty, keys are derived from SECRET_KEY (and from each SECRET_KEY_FALLBACKS entry, so a
SECRET_KEY rotated the Django way still decrypts). That suits development; production should set its own key, so
that whoever learns SECRET_KEY does not also hold every API key, and so that rotating SECRET_KEY is not a key
rotation in disguise.

A stored value that no configured key decrypts reads as an `UnreadableSecret`: the object still loads (the admin
can show it and take a new key), saving writes the stored token back unchanged, and the Dify client refuses to send
it (the call fails as `auth`, which pauses the batch). A value that is not a Fernet token at all (a row written
before encryption) reads as it is and is encrypted when next saved; `rotate_api_keys` does that for every row.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.utils.crypto import salted_hmac

from batches.conf import settings

UNREADABLE_SECRET = "<unreadable-secret>"  # no key of BATCHES_ENCRYPTION_KEY decrypts the stored token
DERIVATION_SALT = "batches.db.crypto.encryption-key"
TOKEN_VERSION = 0x80
TOKEN_OVERHEAD = 1 + 8 + 16 + 32  # version, timestamp, IV, HMAC around the AES blocks


class UnreadableSecret(str):
    """The plaintext of a secret that no configured key decrypts; keeps the stored token to write it back."""

    token: str

    def __new__(cls, token: str) -> UnreadableSecret:
        secret = super().__new__(cls, UNREADABLE_SECRET)
        secret.token = token
        return secret


def is_unreadable(value: str) -> bool:
    """True for the value a secret reads as when it cannot be decrypted (also after a plain `str()` copy)."""
    return value == UNREADABLE_SECRET


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(stored: str) -> str:
    """The plaintext of a stored value: decrypted, kept as is when it is no token, or an UnreadableSecret."""
    if not looks_like_token(stored):
        return stored
    try:
        return _fernet().decrypt(stored.encode("ascii")).decode()
    except (InvalidToken, UnicodeDecodeError):
        return UnreadableSecret(stored)


def looks_like_token(value: str) -> bool:
    """Whether `value` has the shape of a Fernet token (whichever key made it)."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (ValueError, binascii.Error):  # UnicodeEncodeError is a ValueError too
        return False
    blocks = len(raw) - TOKEN_OVERHEAD
    return raw[:1] == bytes([TOKEN_VERSION]) and blocks > 0 and blocks % 16 == 0


def derive_key(secret: str) -> bytes:
    """A Fernet key derived from a Django secret (SECRET_KEY or one of its fallbacks)."""
    digest = salted_hmac(DERIVATION_SALT, "fernet", secret=secret, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest)


def configured_keys() -> list[bytes]:
    """The Fernet keys in force, newest first."""
    entries = _entries(getattr(settings, "BATCHES_ENCRYPTION_KEY", ""))
    if entries:
        return [_checked(number, entry) for number, entry in enumerate(entries, start=1)]
    secrets = [django_settings.SECRET_KEY, *getattr(django_settings, "SECRET_KEY_FALLBACKS", [])]
    return [derive_key(secret) for secret in secrets]


def _entries(value: str | Sequence[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    return [item.strip() for item in items if item.strip()]


def _checked(number: int, entry: str) -> bytes:
    key = entry.encode()
    try:
        Fernet(key)
    except (ValueError, binascii.Error):
        raise ImproperlyConfigured(
            f"BATCHES_ENCRYPTION_KEY: key {number} is not a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None
    return key


def _fernet() -> MultiFernet:
    return _multi_fernet(tuple(configured_keys()))


@lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


# ----------------------------------------------------------------------------------------------- rotation


@dataclass
class Rotation:
    rotated: int = 0
    unreadable: list[str] = field(default_factory=list)  # str() of each object whose secret no key decrypts


def rotate(model: type[models.Model], field_name: str) -> Rotation:
    """Write every row's secret again under the newest key (plaintext rows from before encryption included)."""
    rotation = Rotation()
    for pk in model._default_manager.order_by("pk").values_list("pk", flat=True):
        _rotate_one(model, field_name, pk, rotation)
    return rotation


def _rotate_one(model: type[models.Model], field_name: str, pk: object, rotation: Rotation) -> None:
    # Locked for the read and the write, so a key changed meanwhile by someone else is not overwritten.
    with transaction.atomic():
        obj = model._default_manager.select_for_update().filter(pk=pk).first()
        if obj is None:
            return
        if is_unreadable(getattr(obj, field_name)):
            rotation.unreadable.append(str(obj))
            return
        obj.save(update_fields=[field_name])
        rotation.rotated += 1
