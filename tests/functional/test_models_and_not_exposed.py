"""The admin function's shared read-only models routes (filtered by the key's allowed_models),
and every function's 403 not_exposed for an SDK operation the gateway does not serve."""

from __future__ import annotations

import json

import httpx2
import pytest

from devstack.standin import StandIn
from shared.container import Container
from shared.tenancy.keys import create_key
from tests.support import bearer, client, error_code, make_key

OWNER = "tenant-a"
ALLOWED = ("mistral-small-latest", "codestral-latest")


def _straight(standin: StandIn, path: str) -> httpx2.Response:
    """The same request made straight to the stand-in, as Mistral would answer it."""
    return httpx2.get(standin.url + path, headers={"Authorization": "Bearer standin"})


def _allow_listed(gateway: Container, role: str = "user") -> dict[str, str]:
    with gateway.pool.transaction() as conn:
        key = create_key(
            conn, owner_id=OWNER, name="narrow", role=role, allowed_models=list(ALLOWED)
        )
    return bearer(key)


# -- models --------------------------------------------------------------------------------------


def test_models_list_without_an_allow_list_is_mistrals_answer_byte_for_byte(
    gateway: Container, standin: StandIn
) -> None:
    """A key with no allowed_models gets Mistral's list exactly as Mistral sent it."""
    answer = client("admin").get("/v1/models", headers=bearer(make_key(gateway, "user", OWNER)))
    assert answer.status_code == 200
    assert answer.get_data() == _straight(standin, "/v1/models").content
    assert len(answer.get_json()["data"]) == 5


def test_models_list_shows_only_the_keys_allowed_models(gateway: Container) -> None:
    """A key with allowed_models sees those entries only, in Mistral's order and shape."""
    answer = client("admin").get("/v1/models", headers=_allow_listed(gateway))
    assert answer.status_code == 200
    listing = answer.get_json()
    assert listing["object"] == "list"
    assert [card["id"] for card in listing["data"]] == list(ALLOWED)


def test_models_retrieve_relays_mistrals_card(gateway: Container, standin: StandIn) -> None:
    """An allowed model's card is Mistral's, byte for byte (a fine-tuned id with colons too)."""
    key = bearer(make_key(gateway, "read_only", OWNER))
    for model in ("codestral-latest", "ft:mistral-small-latest:standin:20260101:a1b2c3d4"):
        answer = client("admin").get(f"/v1/models/{model}", headers=key)
        assert answer.status_code == 200, answer.get_data()
        assert answer.get_data() == _straight(standin, f"/v1/models/{model}").content


def test_models_retrieve_outside_the_allow_list_is_403_as_a_turn_is(
    gateway: Container, standin: StandIn
) -> None:
    """A model the key may not name is 403 forbidden with param allowed_models; Mistral
    is not asked."""
    calls = standin.calls()
    answer = client("admin").get("/v1/models/mistral-large-latest", headers=_allow_listed(gateway))
    assert answer.status_code == 403
    body = answer.get_json()
    assert error_code(body) == "forbidden"
    assert body["param"] == "allowed_models"
    assert standin.calls() == calls


def test_a_model_mistral_does_not_have_is_its_404_verbatim(
    gateway: Container, standin: StandIn
) -> None:
    """Mistral's 404 for an unknown model reaches the caller unchanged."""
    answer = client("admin").get(
        "/v1/models/no-such-model", headers=bearer(make_key(gateway, "user", OWNER))
    )
    assert answer.status_code == 404
    assert answer.get_data() == _straight(standin, "/v1/models/no-such-model").content


def test_a_transient_mistral_failure_on_models_is_retried(
    gateway: Container, standin: StandIn
) -> None:
    """A read: Mistral's 503 is retried and the caller gets the list."""
    standin.inject("status=503", 1, "models.list")
    answer = client("admin").get("/v1/models", headers=bearer(make_key(gateway, "user", OWNER)))
    assert answer.status_code == 200
    assert standin.calls()["models.list"] == 2


def test_an_unreadable_list_for_an_allow_listed_key_is_502(
    gateway: Container, standin: StandIn
) -> None:
    """A list the gateway must filter but cannot read is 502 upstream_unavailable, not a 500."""
    standin.inject("malformed", 1, "models.list")
    answer = client("admin").get("/v1/models", headers=_allow_listed(gateway))
    assert answer.status_code == 502
    assert error_code(answer.get_json()) == "upstream_unavailable"


def test_models_need_a_key(gateway: Container) -> None:
    """The models routes are keyed: no key is 401."""
    assert client("admin").get("/v1/models").status_code == 401


# -- not exposed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("function", ["start", "history", "admin"])
def test_every_function_answers_a_not_exposed_operation_with_403(
    gateway: Container, function: str
) -> None:
    """Whichever function the load balancer's default sends it to, GET /v1/users/me is
    403 not_exposed naming beta.users.get_identity, with no key asked for."""
    answer = client(function).get("/v1/users/me", headers={"X-Request-Id": "ne-1"})
    assert answer.status_code == 403
    body = answer.get_json()
    assert error_code(body) == "not_exposed"
    assert body["message"].startswith("beta.users.get_identity is not exposed by this gateway")
    assert answer.headers["X-Request-Id"] == body["request_id"] == "ne-1"


def test_a_not_exposed_method_on_a_served_path_is_403_not_405(gateway: Container) -> None:
    """DELETE /v1/models/{id} (models.delete) is not_exposed, though GET on that path is served."""
    answer = client("admin").delete("/v1/models/ft:mistral-small-latest:x:y:z")
    assert answer.status_code == 403
    assert json.loads(answer.get_data())["message"].startswith("models.delete is not exposed")


def test_an_unknown_path_is_still_404_in_a_function(gateway: Container) -> None:
    """A path neither the routes nor the SDK have stays 404 route_not_found."""
    answer = client("history").get("/v1/nothing-mistral-has")
    assert answer.status_code == 404
    assert error_code(answer.get_json()) == "route_not_found"
