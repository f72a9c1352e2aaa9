"""Model fields: a JSONField that keeps JSON as written (key order), and a field encrypted at rest."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg.types.json import Json

from batches.db import crypto


class OrderedJSONField(models.JSONField):
    """On PostgreSQL a `json` column, not `jsonb`: jsonb sorts keys, which would reorder a user's columns.

    The text is written without `\\uXXXX` escapes (Django's default), so a text search over the column finds
    Chinese and other non-ASCII text as typed, on SQLite and PostgreSQL alike.
    """

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        return "json" if connection.vendor == "postgresql" else super().db_type(connection)

    def get_db_prep_value(self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        if connection.vendor == "postgresql":
            return Json(value, dumps=self.dumps)  # sent as json, so the server never sorts it
        return self.dumps(value)

    def dumps(self, value: Any) -> str:
        return json.dumps(value, cls=self.encoder, ensure_ascii=False)

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is not None and not isinstance(value, str):
            return value  # psycopg already decoded the json column, keeping its order
        return super().from_db_value(value, expression, connection)


class EncryptedCharField(models.TextField):
    """Text kept encrypted in its column as a Fernet token (batches.db.crypto); the model attribute is plaintext.

    `max_length` limits the plaintext (validation only): the column is `text`, as a token is longer than its
    plaintext. Lookups other than `isnull` cannot match (each encryption differs). A token that no configured key
    decrypts reads as `crypto.UnreadableSecret` (never an error), which a save writes back unchanged. Serialized
    (`dumpdata`) it is the token too; loading it back decrypts it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.max_length is not None:
            self.validators.append(MaxLengthValidator(self.max_length))

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        return value if value is None else crypto.decrypt(value)

    def to_python(self, value: Any) -> Any:
        # A token here comes from a serialized dump (value_to_string): read it back as plaintext.
        value = super().to_python(value)
        return value if value is None else crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None:
            return None
        if isinstance(value, crypto.UnreadableSecret):
            return value.token
        return crypto.encrypt(value)

    def value_to_string(self, obj: models.Model) -> str:
        """`dumpdata` writes the token, not the plaintext."""
        return self.get_prep_value(self.value_from_object(obj)) or ""

    def formfield(
        self,
        form_class: type[forms.Field] | None = None,
        choices_form_class: type[forms.ChoiceField] | None = None,
        **kwargs: Any,
    ) -> forms.Field | None:
        """A password input that never renders the stored value (a form may still choose another widget)."""
        kwargs = {"widget": forms.PasswordInput(render_value=False), **kwargs}
        return super().formfield(form_class=form_class, choices_form_class=choices_form_class, **kwargs)
