"""PostgreSQL storage: the bounded pool, connection setup and migrations."""

from shared.db._connect import connector_for
from shared.db._in_progress import InProgress, in_progress
from shared.db._pool import DATABASE_ERRORS, Conn, Pool, db_unavailable, text_array

__all__ = [
    "DATABASE_ERRORS",
    "Conn",
    "InProgress",
    "Pool",
    "connector_for",
    "db_unavailable",
    "in_progress",
    "text_array",
]
