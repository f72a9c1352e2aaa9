"""Case-insensitive "contains" that folds case in every script on both databases.

PostgreSQL's UPPER/ILIKE fold any script under a UTF-8 locale; SQLite's LIKE folds ASCII only (`ünï` does not find
`Ünï`), so on SQLite both sides go through Python's `str.casefold`, registered on each connection.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.lookups import IContains
from django.db.models.sql.compiler import SQLCompiler

SQLITE_FUNCTION = "BATCHES_CASEFOLD"


def _casefold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def register(connection: BaseDatabaseWrapper) -> None:
    """Make SQLITE_FUNCTION known to this connection (a new connection starts without it; registering again is a
    cheap replace, cheaper than keeping track of connections)."""
    connection.ensure_connection()
    connection.connection.create_function(SQLITE_FUNCTION, 1, _casefold, deterministic=True)


class FoldedContains(IContains):
    """`FoldedContains(expression, "text")` in a filter: the expression contains the text, ignoring case."""

    lookup_name = "icontains"  # the backends key their SQL operators by it

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Any]:
        register(connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        sql = f"{SQLITE_FUNCTION}({lhs}) LIKE {SQLITE_FUNCTION}({rhs}) ESCAPE '\\'"
        return sql, (*lhs_params, *rhs_params)
