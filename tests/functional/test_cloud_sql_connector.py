"""The production connection path: Cloud SQL connector settings, over a real database.

Google's API cannot be reached here, so the connector is a fake that records how
it was built and called, and hands back a pg8000 connection to the embedded
PostgreSQL: the pool then runs real queries through what the connector returned.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pg8000.dbapi
from google.cloud.sql.connector import IPTypes

from shared.config import Settings
from shared.db import Pool, connector_for


class FakeConnector:
    built: list[dict[str, Any]] = []
    calls: list[tuple[Any, ...]] = []

    def __init__(self, **kwargs: Any) -> None:
        FakeConnector.built.append(kwargs)
        self.target: Any = None

    def connect(self, instance: str, driver: str, **kwargs: Any) -> pg8000.dbapi.Connection:
        FakeConnector.calls.append((instance, driver, kwargs))
        url = urlsplit(FakeConnector.database_url)
        # The real connector also returns a pg8000 DB-API connection.
        return pg8000.dbapi.connect(
            user="postgres", host=url.hostname, port=url.port, database=url.path.lstrip("/")
        )

    database_url = ""


def test_cloud_sql_path_uses_iam_private_ip_and_lazy_refresh(database_url: str) -> None:
    """With CLOUD_SQL_INSTANCE and IAM auth: one LAZY private-IP connector, no password."""
    FakeConnector.database_url = database_url
    FakeConnector.built.clear()
    FakeConnector.calls.clear()
    settings = Settings(
        cloud_sql_instance="proj:europe-west1:gw",
        db_iam_auth=True,
        db_user="start-sa@proj.iam",
        db_name="gateway",
    )
    pool = Pool(connector_for(settings, FakeConnector), size=2, timeout_s=2)
    for _ in range(3):
        with pool.connection() as conn:
            assert conn.run("SELECT 1 + 1") == [[2]]
    with pool.connection() as conn, pool.connection() as other:
        assert conn.run("SHOW statement_timeout") == [["5s"]]
        assert other.run("SELECT 3") == [[3]]
    pool.close()
    assert FakeConnector.built == [{"ip_type": IPTypes.PRIVATE, "refresh_strategy": "LAZY"}]
    instance, driver, kwargs = FakeConnector.calls[0]
    assert (instance, driver) == ("proj:europe-west1:gw", "pg8000")
    assert kwargs["enable_iam_auth"] is True
    assert kwargs["password"] is None
    assert kwargs["user"] == "start-sa@proj.iam"
    # Connections are reused: two were opened for four checkouts.
    assert len(FakeConnector.calls) == 2
