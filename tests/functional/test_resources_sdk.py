"""Idempotency-Key on resource creates and the list filters, through the unchanged SDK.

The four functions' real apps behind one local server (as the load balancer sends each
request to its function), the stand-in over real HTTP, the real database and Valkey. The
stand-in's call counts and objects say how often Mistral was asked.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
from mistralai.client import Mistral, errors

from devstack.standin import StandIn
from shared.container import Container
from shared.tenancy.keys import NewKey
from tests.support import bearer, client, dispatch, error_code, make_key, served

A = "tenant-idem-a"
B = "tenant-idem-b"
MODEL = "mistral-small-latest"
LINES = b'{"custom_id": "1", "body": {"messages": [{"role": "user", "content": "hi"}]}}\n'
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served(dispatch) as url:
        yield url


@pytest.fixture
def key_a(gateway: Container) -> NewKey:
    return make_key(gateway, "user", A, **NO_LIMIT)


@pytest.fixture
def key_b(gateway: Container) -> NewKey:
    return make_key(gateway, "user", B, **NO_LIMIT)


def _sdk(url: str, key: NewKey, **options: Any) -> Mistral:
    return Mistral(api_key=key.secret, server_url=url, **options)


def _mistral_jobs(standin: StandIn) -> list[str]:
    """The ids of every batch job Mistral (the stand-in) holds, asked directly."""
    direct = Mistral(api_key="direct", server_url=standin.url)
    return [j.id for j in direct.batch.jobs.list(page_size=1000).data or []]


def _mistral_libraries(standin: StandIn) -> list[str]:
    """The ids of every library Mistral (the stand-in) holds, asked directly."""
    direct = Mistral(api_key="direct", server_url=standin.url)
    return [x.id for x in direct.beta.libraries.list(page_size=1000).data]


def _once(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def _input_file(sdk: Mistral) -> str:
    return sdk.files.upload(file={"file_name": "in.jsonl", "content": LINES}, purpose="batch").id


def _job(sdk: Mistral, file_id: str, key: str | None, **fields: Any) -> Any:
    return sdk.batch.jobs.create(
        input_files=[file_id],
        endpoint="/v1/chat/completions",
        model=MODEL,
        http_headers=_once(key) if key else None,
        **fields,
    )


# -- Idempotency-Key ------------------------------------------------------------------------


def test_a_repeated_batch_job_create_with_one_key_makes_one_job(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """The same key and body twice: one job in Mistral, the same job answered both times."""
    sdk = _sdk(url, key_a)
    file_id = _input_file(sdk)
    first = _job(sdk, file_id, "job-1")
    again = _job(sdk, file_id, "job-1")
    assert again == first
    assert standin.calls()["batch.jobs.create"] == 1
    assert _mistral_jobs(standin) == [first.id]
    assert [j.id for j in sdk.batch.jobs.list().data or []] == [first.id]


def test_a_repeated_library_create_replays_the_answer_marked_replayed(
    gateway: Container, standin: StandIn, key_a: NewKey
) -> None:
    """The repeat gets the first answer byte for byte, with `Idempotent-Replayed: true`."""
    admin = client("admin")
    headers = {**bearer(key_a), **_once("lib-1")}
    first = admin.post("/v1/libraries", json={"name": "docs"}, headers=headers)
    again = admin.post("/v1/libraries", json={"name": "docs"}, headers=headers)
    assert first.status_code == again.status_code == 201, first.get_data(as_text=True)
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert again.content_type == first.content_type
    assert standin.calls()["libraries.create"] == 1
    assert _mistral_libraries(standin) == [first.get_json()["id"]]


def _gateway_failed_before_completing(gateway: Container, owner: str, key: str) -> None:
    """The key's record as a gateway that died after recording the object and before
    completing the key leaves it: in progress, its lock since run out."""
    with gateway.pool.connection() as conn:
        conn.run(
            "UPDATE idempotency_records SET status = 'in_progress',"
            " locked_until = now() - interval '1 second', response_status = NULL,"
            " response_headers = NULL, response_body = NULL"
            " WHERE owner_id = :owner AND key = :key",
            owner=owner,
            key=key,
        )


@pytest.mark.parametrize(
    ("path", "body", "operation"),
    [
        ("/v1/libraries", {"name": "docs"}, "libraries.create"),
        ("/v1/batch/jobs", None, "batch.jobs.create"),
    ],
)
def test_a_repeat_after_the_gateway_failed_past_the_record_gets_the_object_made(
    gateway: Container,
    standin: StandIn,
    url: str,
    key_a: NewKey,
    path: str,
    body: dict[str, Any] | None,
    operation: str,
) -> None:
    """The gateway recorded the new object and failed before completing the key; once the
    key's lock ran out, the repeat answers with that object, marked replayed, and Mistral
    makes no second one."""
    if body is None:  # a batch job over a file uploaded first
        body = {
            "input_files": [_input_file(_sdk(url, key_a))],
            "endpoint": "/v1/chat/completions",
            "model": MODEL,
        }
    admin = client("admin")
    headers = {**bearer(key_a), **_once("crash-1")}
    first = admin.post(path, json=body, headers=headers)
    assert first.status_code in (200, 201), first.get_data(as_text=True)
    _gateway_failed_before_completing(gateway, A, "crash-1")
    again = admin.post(path, json=body, headers=headers)
    assert again.status_code == first.status_code
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert standin.calls()[operation] == 1


def test_keys_are_the_tenants_own(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey, key_b: NewKey
) -> None:
    """Another tenant's request with the same key and body is its own: a second library,
    and each tenant lists only its own."""
    mine = _sdk(url, key_a).beta.libraries.create(name="docs", http_headers=_once("shared-key"))
    theirs = _sdk(url, key_b).beta.libraries.create(name="docs", http_headers=_once("shared-key"))
    assert mine.id != theirs.id
    assert standin.calls()["libraries.create"] == 2
    assert [x.id for x in _sdk(url, key_a).beta.libraries.list().data] == [mine.id]
    assert [x.id for x in _sdk(url, key_b).beta.libraries.list().data] == [theirs.id]


def test_the_same_key_with_another_body_is_422(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """A key reused for another library is refused, and Mistral is not asked again."""
    sdk = _sdk(url, key_a)
    sdk.beta.libraries.create(name="docs", http_headers=_once("lib-2"))
    with pytest.raises(errors.MistralError) as refused:
        sdk.beta.libraries.create(name="other", http_headers=_once("lib-2"))
    assert refused.value.status_code == 422
    assert error_code(json.loads(refused.value.body)) == "validation_error"
    assert standin.calls()["libraries.create"] == 1


def test_a_library_and_a_job_under_one_key_are_two_requests(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """One key names one request: used again for another operation, it is 422."""
    sdk = _sdk(url, key_a)
    file_id = _input_file(sdk)
    _job(sdk, file_id, "one-key")
    with pytest.raises(errors.MistralError) as refused:
        sdk.beta.libraries.create(name="docs", http_headers=_once("one-key"))
    assert refused.value.status_code == 422
    assert standin.calls()["libraries.create"] == 0


def test_a_client_that_timed_out_and_retries_gets_the_first_job(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """Mistral is slow, the SDK gives up and sends the create again under its key: the
    retry waits for the first and gets its job; Mistral made one."""
    sdk = _sdk(url, key_a)
    file_id = _input_file(sdk)
    standin.inject("latency=1500", operation="batch.jobs.create")
    with pytest.raises(httpx2.TimeoutException):
        _job(_sdk(url, key_a, timeout_ms=300), file_id, "slow-job")
    retried = _job(sdk, file_id, "slow-job")
    assert standin.calls()["batch.jobs.create"] == 1
    assert _mistral_jobs(standin) == [retried.id]
    assert [j.id for j in sdk.batch.jobs.list().data or []] == [retried.id]


def test_a_repeat_while_the_first_runs_waits_and_gets_its_answer(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """Two creates at once under one key: both answer the one library Mistral made."""
    sdk = _sdk(url, key_a)
    standin.inject("latency=700", operation="libraries.create")
    with ThreadPoolExecutor(2) as pool:
        made = list(
            pool.map(
                lambda _: sdk.beta.libraries.create(name="docs", http_headers=_once("race")),
                range(2),
            )
        )
    assert made[0] == made[1]
    assert standin.calls()["libraries.create"] == 1


def test_a_refused_create_frees_its_key_for_the_corrected_one(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey, key_b: NewKey
) -> None:
    """A job naming another tenant's file is 404 and keeps nothing: the corrected body
    under the same key runs."""
    sdk = _sdk(url, key_a)
    theirs = _input_file(_sdk(url, key_b))
    with pytest.raises(errors.MistralError) as refused:
        _job(sdk, theirs, "fix-me")
    assert refused.value.status_code == 404
    job = _job(sdk, _input_file(sdk), "fix-me")
    assert standin.calls()["batch.jobs.create"] == 1
    assert _mistral_jobs(standin) == [job.id]


def test_a_failed_upstream_create_frees_its_key(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """Mistral fails the first attempt (nothing made): the retry under the key creates."""
    sdk = _sdk(url, key_a)
    standin.inject("status=500", operation="libraries.create")
    with pytest.raises(errors.MistralError):
        sdk.beta.libraries.create(name="docs", http_headers=_once("flaky"))
    made = sdk.beta.libraries.create(name="docs", http_headers=_once("flaky"))
    assert _mistral_libraries(standin) == [made.id]


def test_creates_without_a_key_are_each_their_own(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """No Idempotency-Key: two creates make two libraries, as before."""
    sdk = _sdk(url, key_a)
    one, two = (sdk.beta.libraries.create(name="docs") for _ in range(2))
    assert one.id != two.id
    assert standin.calls()["libraries.create"] == 2


def test_a_malformed_key_is_422(gateway: Container, standin: StandIn, key_a: NewKey) -> None:
    """A key of control characters is refused before Mistral is asked."""
    answer = client("admin").post(
        "/v1/libraries", json={"name": "docs"}, headers={**bearer(key_a), **_once("a\tb")}
    )
    assert answer.status_code == 422
    assert error_code(answer.get_json()) == "validation_error"
    assert standin.calls()["libraries.create"] == 0


# -- list filters ---------------------------------------------------------------------------


def test_created_by_me_lists_the_calling_keys_jobs(
    gateway: Container, url: str, key_a: NewKey, key_b: NewKey
) -> None:
    """`created_by_me=true`: exactly the jobs the calling key made; false: all the
    tenant's; never another tenant's."""
    other_key = make_key(gateway, "user", A, **NO_LIMIT)
    mine, colleague, stranger = _sdk(url, key_a), _sdk(url, other_key), _sdk(url, key_b)
    file_id = _input_file(mine)
    made_by_me = {_job(mine, file_id, None).id for _ in range(2)}
    by_colleague = _job(colleague, file_id, None).id
    _job(stranger, _input_file(stranger), None)
    listed = mine.batch.jobs.list(created_by_me=True)
    assert {j.id for j in listed.data or []} == made_by_me
    assert listed.total == 2
    everyone = mine.batch.jobs.list(created_by_me=False)
    assert {j.id for j in everyone.data or []} == made_by_me | {by_colleague}
    theirs = colleague.batch.jobs.list(created_by_me=True)
    assert [j.id for j in theirs.data or []] == [by_colleague]


def test_created_by_me_that_is_no_boolean_is_422(gateway: Container, key_a: NewKey) -> None:
    """`created_by_me=maybe` is refused as Mistral refuses it."""
    answer = client("admin").get("/v1/batch/jobs?created_by_me=maybe", headers=bearer(key_a))
    assert answer.status_code == 422
    assert answer.get_json()["detail"][0]["loc"] == ["query", "created_by_me"]


def test_filter_owned_by_me_lists_every_library_of_the_tenant(
    gateway: Container, url: str, key_a: NewKey, key_b: NewKey
) -> None:
    """Every library a tenant reaches is its own: true and false list the same, its own."""
    mine = _sdk(url, key_a)
    made = [mine.beta.libraries.create(name=f"lib {n}").id for n in range(2)]
    _sdk(url, key_b).beta.libraries.create(name="theirs")
    for owned in (True, False):
        listed = mine.beta.libraries.list(filter_owned_by_me=owned)
        assert [x.id for x in listed.data] == made[::-1]


def test_page_token_walks_the_tenants_libraries_once_each(
    gateway: Container, url: str, key_a: NewKey, key_b: NewKey
) -> None:
    """`next_page_token` pages through the tenant's libraries, newest first, each once,
    and is null on the last page; a token-paged answer has no `pagination`."""
    mine = _sdk(url, key_a)
    made = [mine.beta.libraries.create(name=f"lib {n}").id for n in range(5)]
    _sdk(url, key_b).beta.libraries.create(name="theirs")
    first = mine.beta.libraries.list(page_size=2)
    assert first.pagination is not None
    assert first.pagination.total_items == 5
    seen, token, pages = [x.id for x in first.data], first.next_page_token, 1
    while token:
        page = mine.beta.libraries.list(page_size=2, page_token=token)
        assert "pagination" not in page.model_fields_set
        seen += [x.id for x in page.data]
        token, pages = page.next_page_token, pages + 1
    assert seen == made[::-1]
    assert pages == 3


def test_a_page_token_the_gateway_did_not_hand_out_is_400(
    gateway: Container, url: str, key_a: NewKey
) -> None:
    """A made-up `page_token` is `400 invalid_page_token`."""
    with pytest.raises(errors.MistralError) as refused:
        _sdk(url, key_a).beta.libraries.list(page_token="not-a-token")
    assert refused.value.status_code == 400
    assert '"invalid_page_token"' in refused.value.body


def test_filters_attributes_keeps_the_documents_holding_them(
    gateway: Container, url: str, key_a: NewKey
) -> None:
    """`filters_attributes` (a JSON object): exactly the documents whose attributes hold
    each of its values."""
    sdk = _sdk(url, key_a)
    lib = sdk.beta.libraries.create(name="docs").id
    docs = sdk.beta.libraries.documents
    made = {}
    for name, attributes in (
        ("a", {"team": "red", "year": 2025}),
        ("b", {"team": "red", "year": 2026}),
        ("c", {"team": "blue", "year": 2025}),
        ("d", None),
    ):
        doc = docs.upload(library_id=lib, file={"file_name": f"{name}.txt", "content": b"text"})
        if attributes is not None:
            docs.update(library_id=lib, document_id=doc.id, attributes=attributes)
        made[name] = doc.id

    def names(raw: str) -> set[str]:
        listed = docs.list(library_id=lib, filters_attributes=raw)
        found = {d.id for d in listed.data}
        assert listed.pagination.total_items == len(found)
        return {n for n, i in made.items() if i in found}

    assert names('{"team": "red"}') == {"a", "b"}
    assert names('{"team": "red", "year": 2025}') == {"a"}
    assert names('{"team": "green"}') == set()
    assert names("{}") == {"a", "b", "c", "d"}


def test_filters_attributes_that_is_no_json_object_is_422(
    gateway: Container, url: str, key_a: NewKey
) -> None:
    """`filters_attributes` that is not a JSON object, or holds what PostgreSQL cannot
    compare (an escaped NUL, NaN), is refused naming the parameter, never a 500."""
    sdk = _sdk(url, key_a)
    lib = sdk.beta.libraries.create(name="docs").id
    for raw in ("team=red", "[1]", '{"team": "\\u0000"}', '{"year": NaN}'):
        answer = client("admin").get(
            f"/v1/libraries/{lib}/documents",
            query_string={"filters_attributes": raw},
            headers=bearer(key_a),
        )
        assert answer.status_code == 422
        assert answer.get_json()["detail"][0]["loc"][:2] == ["query", "filters_attributes"]


def test_the_stand_in_takes_the_same_filters(standin: StandIn) -> None:
    """Direct to the stand-in, the SDK's filters answer in the SDK's shapes: a library
    walk by `page_token`, `filter_owned_by_me`, `filters_attributes`, `created_by_me`."""
    standin.reset()
    direct = Mistral(api_key="direct", server_url=standin.url)
    made = [direct.beta.libraries.create(name=f"lib {n}").id for n in range(3)]
    first = direct.beta.libraries.list(page_size=2, filter_owned_by_me=True)
    assert first.next_page_token
    rest = direct.beta.libraries.list(page_size=2, page_token=first.next_page_token)
    assert "pagination" not in rest.model_fields_set
    assert rest.next_page_token is None
    assert [x.id for x in [*first.data, *rest.data]] == made[::-1]
    doc = direct.beta.libraries.documents.upload(
        library_id=made[0], file={"file_name": "a.txt", "content": b"text"}
    )
    direct.beta.libraries.documents.update(
        library_id=made[0], document_id=doc.id, attributes={"team": "red"}
    )
    red = direct.beta.libraries.documents.list(
        library_id=made[0], filters_attributes='{"team":"red"}'
    )
    blue = direct.beta.libraries.documents.list(
        library_id=made[0], filters_attributes='{"team":"blue"}'
    )
    assert [d.id for d in red.data] == [doc.id]
    assert blue.data == []
    assert direct.batch.jobs.list(created_by_me=True).total == 0


def test_a_repeated_file_upload_with_one_key_makes_one_file(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """The SDK uploads the same file twice (each time under a new multipart boundary):
    one file in Mistral, the first answer both times."""
    sdk = _sdk(url, key_a)
    given = {"file_name": "in.jsonl", "content": LINES}
    first = sdk.files.upload(file=given, purpose="batch", http_headers=_once("up-1"))
    again = sdk.files.upload(file=given, purpose="batch", http_headers=_once("up-1"))
    assert again == first
    assert standin.calls()["files.upload"] == 1
    assert [f.id for f in sdk.files.list().data] == [first.id]


def test_an_upload_repeated_with_other_content_is_422(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """Another file, or the same file for another purpose, under a used key is refused
    once its body has been read; Mistral is not asked again."""
    sdk = _sdk(url, key_a)
    sdk.files.upload(file={"file_name": "a.jsonl", "content": LINES}, http_headers=_once("up-2"))
    for file, purpose in (
        ({"file_name": "a.jsonl", "content": LINES + LINES}, None),
        ({"file_name": "b.jsonl", "content": LINES}, None),
        ({"file_name": "a.jsonl", "content": LINES}, "batch"),
    ):
        with pytest.raises(errors.MistralError) as refused:
            sdk.files.upload(file=file, purpose=purpose, http_headers=_once("up-2"))
        assert refused.value.status_code == 422
    assert standin.calls()["files.upload"] == 1


def test_a_repeated_document_upload_with_one_key_makes_one_document(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey
) -> None:
    """A document uploaded twice under one key is one document, replayed with the header;
    the same key on another library's upload is 422."""
    sdk = _sdk(url, key_a)
    lib, other = (sdk.beta.libraries.create(name=n).id for n in ("docs", "other"))
    admin, headers = client("admin"), {**bearer(key_a), **_once("doc-1")}

    def upload(library_id: str) -> Any:
        return admin.post(
            f"/v1/libraries/{library_id}/documents",
            data={"file": (io.BytesIO(b"some text"), "a.txt")},
            content_type="multipart/form-data",
            headers=headers,
        )

    first, again = upload(lib), upload(lib)
    assert first.status_code == again.status_code == 200, first.get_data(as_text=True)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert upload(other).status_code == 422
    assert standin.calls()["libraries.documents.upload"] == 1
    listed = sdk.beta.libraries.documents.list(library_id=lib)
    assert [d.id for d in listed.data] == [first.get_json()["id"]]


@pytest.mark.parametrize("raw", ['{"k": "\\u0000"}', '{"k": NaN}', '{"k": "\\ud800"}'])
def test_a_batch_jobs_metadata_filter_postgresql_cannot_compare_is_422(
    gateway: Container, key_a: NewKey, raw: str
) -> None:
    """A `metadata` filter holding an escaped NUL, NaN or a lone surrogate is 422 naming
    it (it was a 500: the query failed)."""
    answer = client("admin").get(
        "/v1/batch/jobs", query_string={"metadata": raw}, headers=bearer(key_a)
    )
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.get_json()["detail"][0]["loc"][:2] == ["query", "metadata"]


def test_file_filters_apply_together_and_include_total_false_counts_nothing(
    gateway: Container, standin: StandIn, url: str, key_a: NewKey, key_b: NewKey
) -> None:
    """`sample_type` and `mimetypes` given together both apply (the gateway and the
    stand-in alike); `include_total=false` answers `total` null; no other tenant's file."""
    sdk, direct = _sdk(url, key_a), Mistral(api_key="direct", server_url=standin.url)
    made = {}
    for name, purpose, mimetype in (
        ("f1", "batch", "application/jsonl"),
        ("f2", "batch", "text/plain"),
        ("f3", "fine-tune", "application/jsonl"),
    ):
        file = {"file_name": f"{name}.jsonl", "content": LINES, "content_type": mimetype}
        made[name] = sdk.files.upload(file=file, purpose=purpose).id
    _sdk(url, key_b).files.upload(
        file={"file_name": "theirs.jsonl", "content": LINES, "content_type": "application/jsonl"},
        purpose="batch",
    )
    for client_ in (sdk, direct):
        found = client_.files.list(sample_type=["batch_request"], mimetypes=["application/jsonl"])
        assert found.total == (1 if client_ is sdk else 2)  # the stand-in holds B's file too
        assert made["f1"] in {f.id for f in found.data}
        assert not {made["f2"], made["f3"]} & {f.id for f in found.data}
        uncounted = client_.files.list(include_total=False)
        assert uncounted.total is None
        assert len(uncounted.data) == (3 if client_ is sdk else 4)
