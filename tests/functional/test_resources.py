"""Tenant-owned resources in the admin function: records, audit rows, failures, limits.

The admin function in process, the stand-in over real HTTP, the real database. What the
SDK sees end to end is in tests/e2e/test_sdk_resources.py; here are the paths a healthy
stack never takes: the record cannot be written, Mistral already lost the object, an
upload over the limit or of the wrong type.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pg8000
import pytest

from devstack.standin import StandIn
from shared.container import Container, set_container
from shared.db import Pool
from shared.errors import NotFound
from shared.resources import check_owned
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, error_code, make_key

A = "tenant-a"
B = "tenant-b"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}
LINES = b'{"custom_id": "1", "body": {}}\n'


@pytest.fixture
def admin(gateway: Container) -> NewKey:
    return make_key(gateway, "admin", A, **NO_LIMIT)


def _upload(key: NewKey, path: str = "/v1/files", name: str = "in.jsonl") -> Any:
    return client("admin").post(
        path,
        data={"file": (io.BytesIO(LINES), name), "purpose": "batch"},
        content_type="multipart/form-data",
        headers=bearer(key),
    )


def _rows(gateway: Container) -> list[dict[str, Any]]:
    with gateway.pool.connection() as conn:
        return conn.all("SELECT kind, id, owner_id, status FROM owned_resources ORDER BY kind")


def _audit(gateway: Container) -> list[tuple[str, str]]:
    with gateway.pool.connection() as conn:
        rows = conn.all("SELECT action, target_id FROM audit_log ORDER BY id")
    return [(r["action"], r["target_id"]) for r in rows]


def test_a_created_file_is_recorded_and_audited_then_deleted(
    gateway: Container, admin: NewKey
) -> None:
    """Upload: one row for A and a `file.create` audit row; delete: marked and audited."""
    answer = _upload(admin)
    assert answer.status_code == 200, answer.get_data()
    file_id = answer.get_json()["id"]
    assert _rows(gateway) == [{"kind": "file", "id": file_id, "owner_id": A, "status": "active"}]
    assert ("file.create", file_id) in _audit(gateway)
    gone = client("admin").delete(f"/v1/files/{file_id}", headers=bearer(admin))
    assert gone.get_json() == {"id": file_id, "object": "file", "deleted": True}
    assert _rows(gateway)[0]["status"] == "deleted"
    assert ("file.delete", file_id) in _audit(gateway)


# -- the record cannot be written ---------------------------------------------------------


class _Watched:
    def __init__(self, conn: Any, pool: FailingPool) -> None:
        self._conn, self._pool = conn, pool

    def run(self, sql: str, **params: Any) -> Any:
        self._pool.inspect(sql)
        return self._conn.run(sql, **params)

    def one(self, sql: str, **params: Any) -> Any:
        self._pool.inspect(sql)
        return self._conn.one(sql, **params)

    def all(self, sql: str, **params: Any) -> Any:
        self._pool.inspect(sql)
        return self._conn.all(sql, **params)


class FailingPool(Pool):
    """The real pool, but the first `times` statements containing `fragment` lose the
    connection, as a database failover does."""

    def __init__(self, inner: Pool, fragment: str, times: int) -> None:
        self.inner, self.fragment, self.remaining = inner, fragment, times

    def inspect(self, sql: str) -> None:
        if self.fragment in sql and self.remaining > 0:
            self.remaining -= 1
            raise pg8000.exceptions.InterfaceError("injected: connection lost")

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self.inner.connection() as conn:
            yield _Watched(conn, self)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as conn:
            yield _Watched(conn, self)


@contextmanager
def _failing(gateway: Container, times: int) -> Iterator[FailingPool]:
    pool = FailingPool(gateway.pool, "INSERT INTO owned_resources", times)
    swapped = Container(
        gateway.settings, pool=pool, redis_client=gateway.redis, mistral=gateway.mistral
    )
    set_container(swapped)
    try:
        yield pool
    finally:
        set_container(gateway)


CREATES = {
    "file": (lambda key: _upload(key), "files.delete"),
    "library": (
        lambda key: client("admin").post(
            "/v1/libraries", json={"name": "lost"}, headers=bearer(key)
        ),
        "libraries.delete",
    ),
    "batch_job": (
        lambda key: client("admin").post(
            "/v1/batch/jobs",
            json={"endpoint": "/v1/embeddings", "model": "m", "requests": [{"body": {}}]},
            headers=bearer(key),
        ),
        "batch.jobs.delete",
    ),
}


@pytest.mark.parametrize("kind", sorted(CREATES))
def test_a_create_whose_record_cannot_be_written_is_deleted_in_mistral(
    gateway: Container, admin: NewKey, standin: StandIn, kind: str
) -> None:
    """Every record write fails: the object is deleted in Mistral and the caller gets 503."""
    create, delete_operation = CREATES[kind]
    with _failing(gateway, 100):
        answer = create(admin)
    assert answer.status_code == 503
    assert error_code(answer.get_json()) == "service_unavailable"
    assert standin.calls()[delete_operation] == 1
    assert _rows(gateway) == []
    listed = {
        "file": "/v1/files",
        "library": "/v1/libraries",
        "batch_job": "/v1/batch/jobs",
    }[kind]
    held = httpx2.get(standin.url + listed, headers={"Authorization": "Bearer x"}).json()
    assert held["data"] == []


def test_a_create_survives_one_lost_record_write(gateway: Container, admin: NewKey) -> None:
    """The record's write fails once: the retry records it and the caller gets the file."""
    with _failing(gateway, 1) as pool:
        answer = _upload(admin)
    assert answer.status_code == 200
    assert pool.remaining == 0
    assert [r["id"] for r in _rows(gateway)] == [answer.get_json()["id"]]


def test_a_delete_mistral_already_did_ends_the_record_and_answers_404(
    gateway: Container, admin: NewKey, standin: StandIn
) -> None:
    """Mistral lost the file already: the row ends all the same, and the caller gets 404."""
    file_id = _upload(admin).get_json()["id"]
    httpx2.delete(f"{standin.url}/v1/files/{file_id}", headers={"Authorization": "Bearer x"})
    answer = client("admin").delete(f"/v1/files/{file_id}", headers=bearer(admin))
    assert answer.status_code == 404
    assert error_code(answer.get_json()) == "not_found"
    assert _rows(gateway)[0]["status"] == "deleted"


# -- uploads: type and size ---------------------------------------------------------------


def test_an_upload_that_is_not_multipart_is_415(gateway: Container, admin: NewKey) -> None:
    """A JSON body where Mistral takes multipart: 415 in Mistral's error shape, nothing sent."""
    answer = client("admin").post("/v1/files", json={"file": "x"}, headers=bearer(admin))
    assert answer.status_code == 415
    assert error_code(answer.get_json()) == "unsupported_media_type"


@pytest.fixture
def small_uploads(gateway: Container) -> Iterator[Container]:
    settings = dataclasses.replace(gateway.settings, max_upload_bytes=1024)
    small = Container(
        settings, pool=gateway.pool, redis_client=gateway.redis, mistral=gateway.mistral
    )
    set_container(small)
    yield small
    set_container(gateway)


def test_an_upload_over_max_upload_bytes_is_413(
    small_uploads: Container, admin: NewKey, standin: StandIn
) -> None:
    """Past MAX_UPLOAD_BYTES by Content-Length: 413 before anything reaches Mistral."""
    answer = client("admin").post(
        "/v1/files",
        data={"file": (io.BytesIO(b"x" * 2048), "big.jsonl")},
        content_type="multipart/form-data",
        headers=bearer(admin),
    )
    assert answer.status_code == 413
    assert error_code(answer.get_json()) == "payload_too_large"
    assert standin.calls().get("files.upload", 0) == 0


def test_a_chunked_upload_over_max_upload_bytes_is_413(
    small_uploads: Container, admin: NewKey
) -> None:
    """Past MAX_UPLOAD_BYTES with no Content-Length: 413 once the limit is crossed."""
    body = b"--b\r\nContent-Disposition: form-data; name=file; filename=x\r\n\r\n"
    body += b"x" * 4096 + b"\r\n--b--\r\n"

    answer = client("admin").post(
        "/v1/files",
        input_stream=io.BytesIO(body),
        # As gunicorn serves a chunked body: dechunked, its end marked, no length.
        environ_overrides={"wsgi.input_terminated": True},
        headers={
            **bearer(admin),
            "Content-Type": "multipart/form-data; boundary=b",
            "Transfer-Encoding": "chunked",
        },
    )
    assert answer.status_code == 413
    assert error_code(answer.get_json()) == "payload_too_large"


# -- lists and references -----------------------------------------------------------------


def test_lists_page_over_the_tenants_own_objects(gateway: Container, admin: NewKey) -> None:
    """page and page_size page over A's files only; total counts them all."""
    other = make_key(gateway, "admin", B, **NO_LIMIT)
    mine = [_upload(admin, name=f"{n}.jsonl").get_json()["id"] for n in range(3)]
    _upload(other)
    first = client("admin").get("/v1/files?page=0&page_size=2", headers=bearer(admin)).get_json()
    second = client("admin").get("/v1/files?page=1&page_size=2", headers=bearer(admin)).get_json()
    assert [f["id"] for f in first["data"] + second["data"]] == mine[::-1]
    assert first["total"] == second["total"] == 3
    found = client("admin").get("/v1/files?search=1.JSON", headers=bearer(admin)).get_json()
    assert [f["filename"] for f in found["data"]] == ["1.jsonl"]


def test_check_owned_refuses_another_tenants_and_missing_ids_alike(
    gateway: Container, admin: NewKey
) -> None:
    """The check 19b's OCR and chat routes call: the first id not the tenant's is 404."""
    file_id = _upload(admin).get_json()["id"]
    check_owned(gateway.pool, A, "file", [file_id])
    for tenant, ids in ((B, [file_id]), (A, [file_id, "missing"])):
        with pytest.raises(NotFound) as refused:
            check_owned(gateway.pool, tenant, "file", ids)
        assert "not found" in str(refused.value)
    with pytest.raises(NotFound):
        check_owned(gateway.pool, A, "library", [file_id])  # a file is no library


# -- every HTTP client under the SDK relays a streamed body -------------------------------


def _multipart_chunks(size: int) -> tuple[bytes, list[bytes]]:
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.bin"\r\n\r\n'
    whole = head + b"y" * size + b'\r\n--b\r\nContent-Disposition: form-data; name="purpose"'
    whole += b"\r\n\r\nbatch\r\n--b--\r\n"
    return whole, [whole[i : i + 1000] for i in range(0, len(whole), 1000)]


@pytest.mark.parametrize("http", ["lean", "urllib3", "httpx2"])
@pytest.mark.parametrize("with_length", [True, False])
def test_each_http_client_relays_a_streamed_upload(
    base_settings: Any, standin: StandIn, http: str, with_length: bool
) -> None:
    """With a Content-Length or chunked, each client sends the pieces as one upload."""
    from shared.mistral import build_client

    settings = dataclasses.replace(base_settings, mistral_server_url=standin.url)
    mistral = build_client(settings, None, http=http)  # type: ignore[arg-type]
    whole, pieces = _multipart_chunks(5000)
    answer = mistral.upload(
        "files.upload",
        "/v1/files",
        "multipart/form-data; boundary=b",
        iter(pieces),
        len(whole) if with_length else None,
    )
    body = answer.json()
    assert (body["bytes"], body["purpose"], body["filename"]) == (5000, "batch", "s.bin")


@pytest.mark.parametrize(
    "query", ["created_after=yesterday", "page=-1", "page_size=0", "page=x", "created_after=%00"]
)
def test_a_list_query_that_is_not_valid_is_422(
    gateway: Container, admin: NewKey, query: str
) -> None:
    """A page, page size or date the list cannot take: 422 in Mistral's shape, never a 500."""
    answer = client("admin").get(f"/v1/batch/jobs?{query}", headers=bearer(admin))
    assert answer.status_code == 422, answer.get_data()
    assert error_code(answer.get_json()) == "validation_error"


def test_a_library_its_documents_and_its_sharing_leave_records_and_audit_rows(
    gateway: Container, admin: NewKey
) -> None:
    """Library and document rows, share/unshare audited, the library's delete ends both."""
    app = client("admin")
    lib = app.post("/v1/libraries", json={"name": "L"}, headers=bearer(admin)).get_json()["id"]
    doc = _upload(admin, f"/v1/libraries/{lib}/documents", "d.txt").get_json()["id"]
    share = {"level": "Viewer", "share_with_uuid": "u", "share_with_type": "User"}
    assert (
        app.put(f"/v1/libraries/{lib}/share", json=share, headers=bearer(admin)).status_code == 200
    )
    gone = app.delete(f"/v1/libraries/{lib}/share", json=share, headers=bearer(admin))
    assert gone.status_code == 200
    listed = app.get("/v1/libraries", headers=bearer(admin)).get_json()["data"]
    assert [(x["id"], x["nb_documents"]) for x in listed] == [(lib, 1)]
    assert app.delete(f"/v1/libraries/{lib}", headers=bearer(admin)).status_code == 200
    assert {(r["kind"], r["status"]) for r in _rows(gateway)} == {
        ("library", "deleted"),
        ("document", "deleted"),
    }
    assert [a for a in _audit(gateway) if a[1] in (lib, doc)] == [
        ("library.create", lib),
        ("document.create", doc),
        ("library.share", lib),
        ("library.unshare", lib),
        ("library.delete", lib),
    ]


@pytest.mark.parametrize(
    "given", ["7464-08-16T17:05:50+21:01", "2026-01-01T00:00:00", "0001-01-01T00:00:00+01:00"]
)
def test_batch_job_created_after_takes_any_iso_offset(gateway: Container, given: str) -> None:
    """A `created_after` PostgreSQL could not read as given (an offset past 15:59, none, or a
    time before year 1 in UTC) is read in UTC or refused with 422, never a 500."""
    key = make_key(gateway, "admin", owner="tenant-a")
    answer = client("admin").get(
        "/v1/batch/jobs", query_string={"created_after": given}, headers=bearer(key)
    )
    assert answer.status_code in (200, 422), answer.get_data()
    assert answer.status_code == (422 if given.startswith("0001") else 200)
