"""PostgreSQL storage: the bounded pool, connection setup and migrations."""

from shared.db._connect import connector_for
from shared.db._pool import Conn, Pool, db_unavailable

__all__ = ["Conn", "Pool", "connector_for", "db_unavailable"]
