"""A JSONField that keeps JSON as written, so imported rows and Dify's outputs keep their key order."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg.types.json import Json


class OrderedJSONField(models.JSONField):
    """On PostgreSQL a `json` column, not `jsonb`: jsonb sorts keys, which would reorder a user's columns."""

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        return "json" if connection.vendor == "postgresql" else super().db_type(connection)

    def get_db_prep_value(self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False) -> Any:
        adapted = super().get_db_prep_value(value, connection, prepared)
        if connection.vendor == "postgresql" and hasattr(adapted, "obj") and hasattr(adapted, "dumps"):
            return Json(adapted.obj, dumps=adapted.dumps)  # sent as json, so the server never sorts it
        return adapted

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is not None and not isinstance(value, str):
            return value  # psycopg already decoded the json column, keeping its order
        return super().from_db_value(value, expression, connection)
