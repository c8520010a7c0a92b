"""The admin function's Mistral routes (agents, conversation delete): the unchanged SDK against
the gateway as against Mistral, lists from the database, tenant isolation, and Mistral and the
database kept in step on every failure."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pg8000.exceptions
import pytest
from mistralai.client import Mistral, errors

from devstack.standin import StandIn
from shared.config import Settings
from shared.container import Container, set_container
from shared.db import Pool
from shared.mistral import MistralClient, build_client
from shared.tenancy.keys import NewKey
from tests.support import WEATHER_TOOL, bearer, client, function_app, make_key, served

MODEL = "mistral-small-latest"
OWNER = "tenant-a"
OTHER = "tenant-b"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}


# -- fixtures: the stand-in behind the gateway, and a second one to compare with ----------------


@pytest.fixture(scope="module")
def direct_standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture(scope="module")
def upstream_settings(base_settings: Settings, standin: StandIn) -> Settings:
    return dataclasses.replace(
        base_settings,
        mistral_server_url=standin.url,
        mistral_timeout_ms=1_000,
        mistral_retry_max_ms=200,
    )


@pytest.fixture(scope="module")
def mistral(upstream_settings: Settings) -> MistralClient:
    # No circuit breaker: these tests fail Mistral on purpose, many times in a row.
    return build_client(upstream_settings, None)


def install(
    upstream_settings: Settings, pool: Pool, container: Container, mistral: MistralClient
) -> Container:
    gateway = Container(upstream_settings, pool=pool, redis_client=container.redis, mistral=mistral)
    set_container(gateway)
    return gateway


@pytest.fixture
def gateway(
    container: Container, standin: StandIn, upstream_settings: Settings, mistral: MistralClient
) -> Iterator[Container]:
    """The gateway's container talking to a fresh stand-in, over empty tables."""
    standin.reset()
    previous = set_container(None)
    yield install(upstream_settings, container.pool, container, mistral)
    set_container(previous)


@pytest.fixture
def admin(gateway: Container) -> NewKey:
    return make_key(gateway, "admin", OWNER, **NO_LIMIT)


@pytest.fixture
def other_admin(gateway: Container) -> NewKey:
    return make_key(gateway, "admin", OTHER, **NO_LIMIT)


@pytest.fixture
def upstream(standin: StandIn) -> Iterator[httpx2.Client]:
    """Plain HTTP straight to the stand-in: what Mistral itself holds."""
    with httpx2.Client(
        base_url=standin.url, headers={"Authorization": "Bearer x"}, timeout=5
    ) as http:
        yield http


# -- helpers -------------------------------------------------------------------------------------


def create(key: NewKey, name: str = "alpha", **fields: Any) -> dict[str, Any]:
    answer = client("admin").post(
        "/v1/agents", json={"model": MODEL, "name": name, **fields}, headers=bearer(key)
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def stored(gateway: Container) -> dict[str, dict[str, Any]]:
    with gateway.pool.connection() as conn:
        rows = conn.all(
            "SELECT id, owner_id, name, model, version, instructions FROM agents"
            " WHERE status = 'active'"
        )
    return {row["id"]: row for row in rows}


def held_upstream(upstream: httpx2.Client) -> dict[str, dict[str, Any]]:
    answer = upstream.get("/v1/agents", params={"page_size": 1000})
    assert answer.status_code == 200
    return {agent["id"]: agent for agent in answer.json()}


def assert_agree(gateway: Container, upstream: httpx2.Client) -> None:
    """Mistral and the database know the same agents, with the same current state."""
    rows, agents = stored(gateway), held_upstream(upstream)
    assert set(rows) == set(agents)
    for agent_id, row in rows.items():
        agent = agents[agent_id]
        assert (row["name"], row["model"], row["version"], row["instructions"]) == (
            agent["name"],
            agent["model"],
            agent["version"],
            agent.get("instructions"),
        )


# -- the unchanged SDK, through the gateway and straight to the stand-in -------------------------


def _masked(value: Any, ids: dict[str, str]) -> Any:
    """SDK results as plain data, with ids numbered in order of appearance and no clock."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return [_masked(v, ids) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("created_at", "updated_at"):
                out[k] = "<time>" if v else v
            elif k == "next_page_token":
                out[k] = "<token>" if v else v
            elif k == "id" and isinstance(v, str):
                out[k] = ids.setdefault(v, f"agent-{len(ids)}")
            else:
                out[k] = _masked(v, ids)
        return out
    return value


def scenario(sdk: Mistral) -> list[Any]:
    """Every beta.agents call, in an order that exercises lists, versions and aliases."""
    agents = sdk.beta.agents
    ids: dict[str, str] = {}
    seen: list[Any] = []

    def note(value: Any) -> None:
        seen.append(_masked(value, ids))

    alpha = agents.create(
        model=MODEL,
        name="alpha",
        instructions="be brief",
        description="first one",
        tools=[WEATHER_TOOL],
        completion_args={"temperature": 0.2},
        metadata={"team": "a"},
    )
    beta = agents.create(model=MODEL, name="beta", description="SECOND one")
    gamma = agents.create(model=MODEL, name="gamma", metadata={"team": "b"})
    note([alpha, beta, gamma])
    note(agents.get(agent_id=alpha.id))
    note(agents.list())
    note(agents.list(name="beta"))
    note(agents.list(search="second"))
    note(agents.list(metadata={"team": "a"}))
    note(agents.list(page=1, page_size=2))
    note(agents.list(sources=["playground"]))
    note(agents.list(deployment_chat=False))
    page = agents.list_pages(page_size=2)
    pages = []
    while page is not None:
        pages.append(page.result)
        page = page.next()
    note(pages)
    note(agents.update(agent_id=alpha.id, instructions="be verbose", name="alpha-2"))
    note(agents.update(agent_id=alpha.id, deployment_chat=True))
    note(agents.list(deployment_chat=True))
    note(agents.update_version(agent_id=alpha.id, version=1))
    note(agents.get(agent_id=alpha.id))
    note(agents.list_versions(agent_id=alpha.id))
    note(agents.get_version(agent_id=alpha.id, version="2"))
    note(agents.create_version_alias(agent_id=alpha.id, alias="stable", version=0))
    note(agents.list_version_aliases(agent_id=alpha.id))
    note(agents.get(agent_id=alpha.id, agent_version="stable"))
    note(agents.delete_version_alias(agent_id=alpha.id, alias="stable"))
    note(agents.list_version_aliases(agent_id=alpha.id))
    note(agents.delete(agent_id=beta.id))
    note(agents.list())
    with pytest.raises(errors.SDKError) as missing:
        agents.get(agent_id=beta.id)
    note(missing.value.status_code)
    return seen


# The deprecated `list` warns on every call; the gateway must serve it all the same.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_sdk_agents_calls_behave_as_straight_against_mistral(
    gateway: Container, admin: NewKey, direct_standin: StandIn, upstream: httpx2.Client
) -> None:
    """Every beta.agents call through the gateway over HTTP answers what the stand-in answers."""
    direct_standin.reset()
    expected = scenario(Mistral(api_key="direct", server_url=direct_standin.url))
    with served(function_app("admin")) as url:
        got = scenario(Mistral(api_key=admin.secret, server_url=url))
    assert len(got) == len(expected)
    for step, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"step {step}"
    assert_agree(gateway, upstream)


def test_delete_answers_exactly_204_without_body_or_content_type(
    gateway: Container, admin: NewKey
) -> None:
    """DELETE /v1/agents/{id} is a bare 204: no body and no content type for the SDK to trip on."""
    agent = create(admin)
    answer = client("admin").delete(f"/v1/agents/{agent['id']}", headers=bearer(admin))
    assert answer.status_code == 204
    assert answer.get_data() == b""
    assert "Content-Type" not in answer.headers


# -- stored rows and lists -------------------------------------------------------------------------


def test_create_records_the_agent_with_its_owner_and_mistral_answer(
    gateway: Container, admin: NewKey, upstream: httpx2.Client
) -> None:
    """The row holds owner, fields and Mistral's own answer, unknown fields included."""
    agent = create(admin, instructions="hi", metadata={"k": 1}, x_standin_echo={"future": "field"})
    assert agent["x_standin_echo"] == {"future": "field"}
    with gateway.pool.connection() as conn:
        row = conn.one("SELECT * FROM agents WHERE id = :id", id=agent["id"])
    assert row is not None
    assert (row["owner_id"], row["name"], row["model"], row["instructions"]) == (
        OWNER,
        "alpha",
        MODEL,
        "hi",
    )
    assert (row["version"], row["tools"], row["metadata"], row["status"]) == (
        0,
        [],
        {"k": 1},
        "active",
    )
    assert row["body"] == agent
    fetched = client("admin").get(f"/v1/agents/{agent['id']}", headers=bearer(admin))
    assert fetched.get_json()["x_standin_echo"] == {"future": "field"}
    assert_agree(gateway, upstream)


def test_two_agents_may_share_a_name_as_in_mistral(
    gateway: Container, admin: NewKey, standin: StandIn
) -> None:
    """A second create with a live agent's name makes a second agent; both are listed by name."""
    first = create(admin, "same")
    second = create(admin, "same")
    assert first["id"] != second["id"]
    assert standin.calls()["agents.create"] == 2
    listed = client("admin").get("/v1/agents/pages?name=same", headers=bearer(admin)).get_json()
    assert {a["id"] for a in listed["data"]} == {first["id"], second["id"]}


def test_an_agent_may_be_renamed_to_a_taken_name(gateway: Container, admin: NewKey) -> None:
    """A rename to another live agent's name is made, as Mistral makes it."""
    create(admin, "taken")
    other = create(admin, "free")
    answer = client("admin").patch(
        f"/v1/agents/{other['id']}", json={"name": "taken"}, headers=bearer(admin)
    )
    assert answer.status_code == 200
    assert answer.get_json()["name"] == "taken"


def test_create_checks_the_fields_the_gateway_needs(gateway: Container, admin: NewKey) -> None:
    """A create without a name or with a non-string model is 422 in the SDK's detail form."""
    answer = client("admin").post("/v1/agents", json={"model": 5}, headers=bearer(admin))
    assert answer.status_code == 422
    locs = [tuple(d["loc"]) for d in answer.get_json()["detail"]]
    assert locs == [("body", "model"), ("body", "name")]


def test_list_pages_walks_every_agent_once_newest_first(gateway: Container, admin: NewKey) -> None:
    """Keyset pages of 2 over 5 agents: each once, newest first, a null token on the last."""
    made = [create(admin, f"agent-{i}")["id"] for i in range(5)]
    seen: list[str] = []
    token = None
    for _ in range(5):
        query = {"page_size": "2", **({"page_token": token} if token else {})}
        page = client("admin").get("/v1/agents/pages", query_string=query, headers=bearer(admin))
        body = page.get_json()
        seen += [a["id"] for a in body["data"]]
        token = body["next_page_token"]
        if token is None:
            break
    assert seen == made[::-1]


def test_list_filters_by_metadata_and_ignores_the_sdk_sentinel(
    gateway: Container, admin: NewKey
) -> None:
    """A JSON object in `metadata` filters exactly; the SDK's sentinel string means no filter."""
    create(admin, "one", metadata={"team": "a", "tier": 1})
    create(admin, "two", metadata={"team": "b"})
    create(admin, "three")

    def names(metadata: str) -> list[str]:
        answer = client("admin").get(
            "/v1/agents", query_string={"metadata": metadata}, headers=bearer(admin)
        )
        return [a["name"] for a in answer.get_json()]

    assert names(json.dumps({"team": "a"})) == ["one"]
    assert names(json.dumps({"team": "a", "tier": 2})) == []
    assert names(json.dumps("~?~unset~?~sentinel~?~")) == ["three", "two", "one"]


def test_bad_list_parameters_are_422(gateway: Container, admin: NewKey) -> None:
    """page_size below 1, a non-boolean deployment_chat and a page that is no number are 422
    (a forged page token is 400, as Mistral answers it: see test_fidelity)."""
    app = client("admin")
    for query in (
        {"page_size": "0"},
        {"deployment_chat": "maybe"},
        {"page": "x"},
    ):
        assert app.get("/v1/agents", query_string=query, headers=bearer(admin)).status_code == 422
    forged = app.get("/v1/agents/pages?page_token=not-a-token", headers=bearer(admin))
    assert forged.status_code == 400


# -- tenant isolation ------------------------------------------------------------------------------


def test_another_tenants_agent_is_404_and_never_reaches_mistral(
    gateway: Container, admin: NewKey, other_admin: NewKey, standin: StandIn
) -> None:
    """Every per-agent call by another tenant is 404 with nothing sent upstream."""
    agent_id = create(admin)["id"]
    before = standin.calls()
    app = client("admin")
    path = f"/v1/agents/{agent_id}"
    attempts = [
        app.get(path, headers=bearer(other_admin)),
        app.get(path + "?agent_version=0", headers=bearer(other_admin)),
        app.patch(path, json={"instructions": "mine"}, headers=bearer(other_admin)),
        app.delete(path, headers=bearer(other_admin)),
        app.patch(path + "/version?version=0", headers=bearer(other_admin)),
        app.get(path + "/versions", headers=bearer(other_admin)),
        app.get(path + "/versions/0", headers=bearer(other_admin)),
        app.put(path + "/aliases?alias=x&version=0", headers=bearer(other_admin)),
        app.get(path + "/aliases", headers=bearer(other_admin)),
        app.delete(path + "/aliases?alias=x", headers=bearer(other_admin)),
    ]
    assert [a.status_code for a in attempts] == [404] * len(attempts)
    assert standin.calls() == before


def test_lists_never_show_another_tenants_agents(
    gateway: Container, admin: NewKey, other_admin: NewKey, standin: StandIn
) -> None:
    """Both list routes, filters included, show only the caller's agents."""
    mine = create(admin, "shared-name")["id"]
    create(other_admin, "shared-name")
    app = client("admin")
    listed = app.get("/v1/agents?name=shared-name", headers=bearer(admin)).get_json()
    paged = app.get("/v1/agents/pages?search=shared", headers=bearer(admin)).get_json()
    assert [a["id"] for a in listed] == [mine]
    assert [a["id"] for a in paged["data"]] == [mine]
    assert standin.calls()["agents.list"] == standin.calls()["agents.list_pages"] == 0


# -- Mistral fails: the database is left as it was, and Mistral is put back ---------------------


FAILURES = {
    # fault, times: Mistral fails before doing anything, on every retry
    "refused": ("status=400", 3),
    "down": ("status=503", 3),
    # Mistral does the change and then fails to say so
    "done_then_503": ("status_after=503", 3),
    "done_then_reset": ("reset_after", 3),
    "done_then_garbage": ("malformed", 3),
}


def _operation(
    op: str, admin: NewKey, agent_id: str
) -> tuple[str, Callable[[], Any]]:  # upstream operation, gateway call
    app = client("admin")
    path = f"/v1/agents/{agent_id}"
    calls: dict[str, tuple[str, Callable[[], Any]]] = {
        "create": (
            "agents.create",
            lambda: app.post(
                "/v1/agents", json={"model": MODEL, "name": "new"}, headers=bearer(admin)
            ),
        ),
        "update": (
            "agents.update",
            lambda: app.patch(path, json={"instructions": "v-next"}, headers=bearer(admin)),
        ),
        "switch": (
            "agents.update_version",
            lambda: app.patch(path + "/version?version=0", headers=bearer(admin)),
        ),
        "delete": ("agents.delete", lambda: app.delete(path, headers=bearer(admin))),
    }
    return calls[op]


def _seed_two_versions(admin: NewKey) -> str:
    agent_id = create(admin, "seeded", instructions="v0")["id"]
    answer = client("admin").patch(
        f"/v1/agents/{agent_id}", json={"instructions": "v1"}, headers=bearer(admin)
    )
    assert answer.get_json()["version"] == 1
    return agent_id


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("op", ["create", "update", "switch", "delete"])
def test_when_mistral_fails_both_sides_still_agree(
    gateway: Container,
    admin: NewKey,
    standin: StandIn,
    upstream: httpx2.Client,
    op: str,
    failure: str,
) -> None:
    """Whatever Mistral's failure, afterwards Mistral and the database hold the same agents."""
    agent_id = _seed_two_versions(admin)
    before = stored(gateway)
    operation, call = _operation(op, admin, agent_id)
    fault, times = FAILURES[failure]
    standin.inject(fault, times, operation)
    answer = call()
    standin.clear_faults()
    assert_agree(gateway, upstream)
    if answer.status_code >= 400:
        assert stored(gateway) == before
        expected = 400 if failure == "refused" else 502
        assert answer.status_code == expected
    else:
        # Only a delete Mistral carried out may end well: a retry finds the agent gone.
        assert (op, answer.status_code) == ("delete", 204)
        assert failure.startswith("done_then")
        assert agent_id not in stored(gateway)


RELAYED = {
    "agents.get": ("GET", "?agent_version=0"),
    "agents.list_versions": ("GET", "/versions"),
    "agents.get_version": ("GET", "/versions/0"),
    "agents.create_alias": ("PUT", "/aliases?alias=a&version=0"),
    "agents.list_aliases": ("GET", "/aliases"),
    "agents.delete_alias": ("DELETE", "/aliases?alias=a"),
}


@pytest.mark.parametrize(("fault", "status"), [("status=400", 400), ("status=503", 502)])
@pytest.mark.parametrize("operation", sorted(RELAYED))
def test_failing_version_and_alias_calls_are_relayed_and_change_nothing_stored(
    gateway: Container,
    admin: NewKey,
    standin: StandIn,
    upstream: httpx2.Client,
    operation: str,
    fault: str,
    status: int,
) -> None:
    """Mistral refusing or down on a version or alias call: its error, and the row unchanged."""
    agent_id = _seed_two_versions(admin)
    before = stored(gateway)
    standin.inject(fault, 3, operation)
    method, suffix = RELAYED[operation]
    answer = client("admin").open(
        f"/v1/agents/{agent_id}{suffix}", method=method, headers=bearer(admin)
    )
    standin.clear_faults()
    assert answer.status_code == status
    assert stored(gateway) == before
    assert_agree(gateway, upstream)


def test_a_create_whose_answer_times_out_leaves_no_agent_anywhere(
    gateway: Container, admin: NewKey, standin: StandIn, upstream: httpx2.Client
) -> None:
    """Mistral makes the agent but the answer never comes: the gateway deletes it in Mistral."""
    standin.inject("timeout_after=1500", 1, "agents.create")
    answer = client("admin").post(
        "/v1/agents", json={"model": MODEL, "name": "slow"}, headers=bearer(admin)
    )
    assert answer.status_code == 504
    assert standin.calls()["agents.delete"] == 1
    assert held_upstream(upstream) == {}
    assert_agree(gateway, upstream)


def test_an_unanswered_create_deletes_only_the_agent_it_made(
    gateway: Container,
    admin: NewKey,
    other_admin: NewKey,
    standin: StandIn,
    upstream: httpx2.Client,
) -> None:
    """The clean-up after an unanswered create keeps another tenant's agent of the same name."""
    theirs = create(other_admin, "popular")["id"]
    standin.inject("status_after=503", 1, "agents.create")
    answer = client("admin").post(
        "/v1/agents", json={"model": MODEL, "name": "popular"}, headers=bearer(admin)
    )
    assert answer.status_code == 502
    assert standin.calls()["agents.delete"] == 1
    assert set(held_upstream(upstream)) == {theirs}
    assert_agree(gateway, upstream)


def _in_progress(gateway: Container) -> int:
    """How many writes are waiting on Mistral (their in-progress records)."""
    with gateway.pool.connection() as conn:
        row = conn.one("SELECT count(*) AS n FROM writes_in_progress WHERE lease_until > now()")
    return int(row["n"]) if row else 0


def test_a_write_while_another_waits_on_mistral_is_409(
    gateway: Container, admin: NewKey, standin: StandIn
) -> None:
    """An update while another update of the agent waits on Mistral: 409 agent_busy with
    Retry-After; the first one then succeeds."""
    agent_id = create(admin)["id"]
    # Within the 1 s upstream timeout of this module's settings.
    standin.inject("latency=700", count=1, operation="agents.update")
    path = f"/v1/agents/{agent_id}"
    first: list[Any] = []
    slow = threading.Thread(
        target=lambda: first.append(
            client("admin").patch(path, json={"instructions": "a"}, headers=bearer(admin))
        )
    )
    slow.start()
    try:
        while _in_progress(gateway) == 0 and slow.is_alive():
            threading.Event().wait(0.02)
        answer = client("admin").patch(path, json={"instructions": "b"}, headers=bearer(admin))
    finally:
        slow.join()
    assert answer.status_code == 409
    assert answer.headers["Retry-After"] == "1"
    assert answer.get_json()["code"] == "agent_busy"
    assert first[0].status_code == 200
    assert _in_progress(gateway) == 0


# -- the database fails after Mistral succeeded -----------------------------------------------


class _Watched:
    """A connection whose statements the failing pool inspects first."""

    def __init__(self, conn: Any, pool: FailingPool) -> None:
        self._conn = conn
        self._pool = pool

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
    """The real pool, except that the first `times` statements containing `fragment` lose the
    connection (as a database failover does), after running `before` once if given."""

    def __init__(
        self,
        inner: Pool,
        fragment: str,
        times: int,
        before: Callable[[], None] | None = None,
    ) -> None:
        self.inner = inner
        self.fragment = fragment
        self.remaining = times
        self.before = before

    def inspect(self, sql: str) -> None:
        if self.fragment not in sql:
            return
        if self.before is not None:
            hook, self.before = self.before, None
            hook()
        if self.remaining > 0:
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


@pytest.fixture
def fail_db(
    gateway: Container, upstream_settings: Settings, mistral: MistralClient
) -> Callable[..., FailingPool]:
    """Swap in a pool that fails the statements a test names."""

    def swap(fragment: str, times: int, before: Callable[[], None] | None = None) -> FailingPool:
        pool = FailingPool(gateway.pool, fragment, times, before)
        install(upstream_settings, pool, gateway, mistral)
        return pool

    return swap


_STORE = "INSERT INTO agents"


def test_create_survives_one_lost_database_write(
    gateway: Container, admin: NewKey, upstream: httpx2.Client, fail_db: Any
) -> None:
    """The insert fails once after Mistral made the agent: the retry records it, 200."""
    pool = fail_db(_STORE, 1)
    agent = create(admin, "kept")
    assert pool.remaining == 0
    assert set(stored(gateway)) == {agent["id"]}
    assert_agree(gateway, upstream)


def test_create_is_undone_in_mistral_when_the_database_stays_down(
    gateway: Container, admin: NewKey, standin: StandIn, upstream: httpx2.Client, fail_db: Any
) -> None:
    """Every insert fails: the agent is deleted in Mistral and the caller gets 503."""
    fail_db(_STORE, 100)
    answer = client("admin").post(
        "/v1/agents", json={"model": MODEL, "name": "lost"}, headers=bearer(admin)
    )
    assert answer.status_code == 503
    assert standin.calls()["agents.delete"] == 1
    assert held_upstream(upstream) == {}
    assert_agree(gateway, upstream)


def test_a_same_name_agent_stored_meanwhile_does_not_undo_the_create(
    gateway: Container, admin: NewKey, upstream: httpx2.Client, fail_db: Any
) -> None:
    """A same-name agent committed while the create's write is retried: both are kept."""
    rival = upstream.post("/v1/agents", json={"model": MODEL, "name": "contested"}).json()

    def commit_rival() -> None:
        with gateway.pool.connection() as conn:
            conn.run(
                "INSERT INTO agents (id, owner_id, name, model, body, created_at, updated_at)"
                " VALUES (:id, :owner, :name, :model, CAST(:body AS jsonb), now(), now())",
                id=rival["id"],
                owner=OWNER,
                name="contested",
                model=MODEL,
                body=json.dumps(rival),
            )

    fail_db(_STORE, 0, before=commit_rival)
    answer = client("admin").post(
        "/v1/agents", json={"model": MODEL, "name": "contested"}, headers=bearer(admin)
    )
    assert answer.status_code == 200
    assert set(stored(gateway)) == {rival["id"], answer.get_json()["id"]}
    assert set(stored(gateway)) == set(held_upstream(upstream))
    assert_agree(gateway, upstream)


@pytest.mark.parametrize("op", ["update", "switch"])
def test_a_change_is_undone_in_mistral_when_the_database_stays_down(
    gateway: Container, admin: NewKey, upstream: httpx2.Client, fail_db: Any, op: str
) -> None:
    """Every write of the new version fails: Mistral's current version is set back, 503."""
    agent_id = _seed_two_versions(admin)
    before = stored(gateway)
    fail_db(_STORE, 100)
    answer = _operation(op, admin, agent_id)[1]()
    assert answer.status_code == 503
    assert stored(gateway) == before
    assert held_upstream(upstream)[agent_id]["version"] == 1
    assert_agree(gateway, upstream)


@pytest.mark.parametrize("op", ["update", "switch"])
def test_a_change_survives_one_lost_database_write(
    gateway: Container, admin: NewKey, upstream: httpx2.Client, fail_db: Any, op: str
) -> None:
    """The write fails once: the retry stores Mistral's new state and the caller gets it."""
    agent_id = _seed_two_versions(admin)
    fail_db(_STORE, 1)
    answer = _operation(op, admin, agent_id)[1]()
    assert answer.status_code == 200
    assert stored(gateway)[agent_id]["version"] == answer.get_json()["version"]
    assert_agree(gateway, upstream)


def test_a_delete_the_database_missed_is_completed_by_the_next_delete(
    gateway: Container, admin: NewKey, upstream: httpx2.Client, fail_db: Any
) -> None:
    """Mistral deleted but the database could not record it: 503, then the next delete is 204."""
    agent_id = create(admin)["id"]
    fail_db("SET status = 'deleted'", 100)
    first = client("admin").delete(f"/v1/agents/{agent_id}", headers=bearer(admin))
    assert first.status_code == 503
    assert agent_id not in held_upstream(upstream)
    fail_db("SET status = 'deleted'", 0)
    second = client("admin").delete(f"/v1/agents/{agent_id}", headers=bearer(admin))
    assert second.status_code == 204
    assert_agree(gateway, upstream)


def test_the_database_down_before_mistral_sends_nothing_upstream(
    gateway: Container, admin: NewKey, standin: StandIn, fail_db: Any
) -> None:
    """If the ownership check cannot run, the answer is 503 and Mistral is never asked."""
    agent_id = create(admin)["id"]
    fail_db("FROM agents WHERE id", 100)
    answer = client("admin").patch(
        f"/v1/agents/{agent_id}", json={"instructions": "x"}, headers=bearer(admin)
    )
    assert answer.status_code == 503
    assert standin.calls()["agents.update"] == 0


# -- DELETE /v1/conversations/{id} ---------------------------------------------------------------


def seed_conversation(gateway: Container, conversation_id: str, owner: str = OWNER) -> None:
    """A conversation as the start function stores it: the row, two entries, a usage event."""
    with gateway.pool.transaction() as conn:
        conn.run(
            "INSERT INTO conversations (id, owner_id, model, created_at, updated_at)"
            " VALUES (:id, :owner, :model, now(), now())",
            id=conversation_id,
            owner=owner,
            model=MODEL,
        )
        for seq, kind in enumerate(("message.input", "message.output")):
            conn.run(
                "INSERT INTO conversation_entries (conversation_id, seq, id, owner_id, type,"
                " body, prompt_tokens, completion_tokens, created_at)"
                " VALUES (:conv, :seq, :id, :owner, :type, '{}', :p, :c, now())",
                conv=conversation_id,
                seq=seq,
                id=f"msg_{seq}",
                owner=owner,
                type=kind,
                p=3 if seq == 0 else 0,
                c=5 if seq == 1 else 0,
            )
        conn.run(
            "INSERT INTO usage_events (owner_id, operation, model, conversation_id, status,"
            " prompt_tokens, completion_tokens) VALUES (:owner, 'conversations.start', :model,"
            " :conv, 200, 3, 5)",
            owner=owner,
            model=MODEL,
            conv=conversation_id,
        )


def conversation_rows(gateway: Container, conversation_id: str) -> tuple[int, int, int]:
    """(conversations, entries, usage events) stored for the conversation."""
    with gateway.pool.connection() as conn:
        row = conn.one(
            "SELECT (SELECT count(*) FROM conversations WHERE id = :id) AS c,"
            " (SELECT count(*) FROM conversation_entries WHERE conversation_id = :id) AS e,"
            " (SELECT count(*) FROM usage_events WHERE conversation_id = :id) AS u",
            id=conversation_id,
        )
    assert row is not None
    return row["c"], row["e"], row["u"]


def start_upstream(upstream: httpx2.Client) -> str:
    answer = upstream.post("/v1/conversations", json={"inputs": "hello", "model": MODEL})
    assert answer.status_code == 200
    conversation_id: str = answer.json()["conversation_id"]
    return conversation_id


def test_sdk_conversation_delete_removes_it_in_mistral_and_the_database(
    gateway: Container, admin: NewKey, upstream: httpx2.Client
) -> None:
    """SDK delete over HTTP: gone in Mistral, row and entries deleted, usage kept."""
    conversation_id = start_upstream(upstream)
    seed_conversation(gateway, conversation_id)
    with served(function_app("admin")) as url:
        sdk = Mistral(api_key=admin.secret, server_url=url)
        assert sdk.beta.conversations.delete(conversation_id=conversation_id) is None
    assert upstream.get(f"/v1/conversations/{conversation_id}").status_code == 404
    assert conversation_rows(gateway, conversation_id) == (0, 0, 1)


def test_conversation_delete_is_a_bare_204(gateway: Container, admin: NewKey) -> None:
    """The answer is exactly 204 with no body and no content type."""
    seed_conversation(gateway, "conv_local")
    answer = client("admin").delete("/v1/conversations/conv_local", headers=bearer(admin))
    assert answer.status_code == 204
    assert answer.get_data() == b""
    assert "Content-Type" not in answer.headers


def test_a_conversation_mistral_never_kept_is_still_deleted(
    gateway: Container, admin: NewKey, standin: StandIn
) -> None:
    """Mistral's 404 (a store:false conversation) counts as deleted: the row goes, 204."""
    seed_conversation(gateway, "conv_unstored")
    answer = client("admin").delete("/v1/conversations/conv_unstored", headers=bearer(admin))
    assert answer.status_code == 204
    assert standin.calls()["conversations.delete"] == 1
    assert conversation_rows(gateway, "conv_unstored") == (0, 0, 1)


def test_another_tenants_conversation_delete_is_404_and_never_reaches_mistral(
    gateway: Container, admin: NewKey, standin: StandIn
) -> None:
    """Deleting another tenant's (or no) conversation is 404 with nothing sent upstream."""
    seed_conversation(gateway, "conv_theirs", owner=OTHER)
    app = client("admin")
    assert app.delete("/v1/conversations/conv_theirs", headers=bearer(admin)).status_code == 404
    assert app.delete("/v1/conversations/conv_none", headers=bearer(admin)).status_code == 404
    assert standin.calls()["conversations.delete"] == 0
    assert conversation_rows(gateway, "conv_theirs") == (1, 2, 1)


def test_when_mistral_fails_the_conversation_is_kept_on_both_sides(
    gateway: Container, admin: NewKey, standin: StandIn, upstream: httpx2.Client
) -> None:
    """Mistral down on every retry: 502, and both Mistral and the database still have it."""
    conversation_id = start_upstream(upstream)
    seed_conversation(gateway, conversation_id)
    standin.inject("status=503", 3, "conversations.delete")
    answer = client("admin").delete(f"/v1/conversations/{conversation_id}", headers=bearer(admin))
    assert answer.status_code == 502
    assert upstream.get(f"/v1/conversations/{conversation_id}").status_code == 200
    assert conversation_rows(gateway, conversation_id) == (1, 2, 1)


def test_a_conversation_delete_the_database_missed_is_completed_by_the_next_one(
    gateway: Container, admin: NewKey, upstream: httpx2.Client, fail_db: Any
) -> None:
    """Mistral deletes but the database stays down: 503; the repeated delete answers 204."""
    conversation_id = start_upstream(upstream)
    seed_conversation(gateway, conversation_id)
    fail_db("DELETE FROM conversations", 100)
    path = f"/v1/conversations/{conversation_id}"
    assert client("admin").delete(path, headers=bearer(admin)).status_code == 503
    assert upstream.get(path).status_code == 404
    assert conversation_rows(gateway, conversation_id)[0] == 1
    fail_db("DELETE FROM conversations", 0)
    assert client("admin").delete(path, headers=bearer(admin)).status_code == 204
    assert conversation_rows(gateway, conversation_id) == (0, 0, 1)
