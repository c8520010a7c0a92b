"""The unchanged SDK through `make run`'s stack: the shared read-only models (each call equal
to the same call made straight to the stand-in) and the SDK's not-exposed operations (403)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from mistralai.client import Mistral, errors

from devstack.stack import StackInfo
from shared.container import Container
from shared.tenancy.keys import NewKey, create_key

ALLOWED = ["mistral-small-latest", "ft:mistral-small-latest:standin:20260101:a1b2c3d4"]


@pytest.fixture(scope="module")
def gateway(stack: StackInfo, user_key: NewKey) -> Mistral:
    return Mistral(api_key=user_key.secret, server_url=stack.url)


@pytest.fixture(scope="module")
def direct(stack: StackInfo) -> Mistral:
    return Mistral(api_key="direct", server_url=stack.mistral_url)


@pytest.fixture(scope="module")
def narrow(stack: StackInfo, stack_container: Container) -> Mistral:
    """A client whose key may name only ALLOWED."""
    with stack_container.pool.transaction() as conn:
        key = create_key(
            conn, owner_id="e2e-tenant", name="narrow", role="read_only", allowed_models=ALLOWED
        )
    return Mistral(api_key=key.secret, server_url=stack.url)


def test_models_list_and_retrieve_equal_the_stand_ins(gateway: Mistral, direct: Mistral) -> None:
    """models.list and models.retrieve through the gateway parse to what Mistral answers."""
    listed = gateway.models.list()
    assert listed == direct.models.list()
    assert len(listed.data or []) == 5
    for card in listed.data or []:
        assert gateway.models.retrieve(model_id=card.id) == direct.models.retrieve(model_id=card.id)


def test_models_async_equal_the_stand_ins(gateway: Mistral, direct: Mistral) -> None:
    """The async calls answer as the sync ones, and as Mistral does."""

    async def both() -> tuple[Any, ...]:
        return await asyncio.gather(
            gateway.models.list_async(),
            direct.models.list_async(),
            gateway.models.retrieve_async(model_id="codestral-latest"),
            direct.models.retrieve_async(model_id="codestral-latest"),
        )

    via_list, ref_list, via_card, ref_card = asyncio.run(both())
    assert via_list == ref_list
    assert via_card == ref_card
    assert type(via_card).__name__ == "BaseModelCard"


def test_a_keys_allowed_models_filter_the_list(narrow: Mistral, direct: Mistral) -> None:
    """A key with allowed_models lists only those models, each the stand-in's own card."""
    listed = narrow.models.list()
    assert [card.id for card in listed.data or []] == ALLOWED
    assert listed.data == [card for card in direct.models.list().data or [] if card.id in ALLOWED]
    fine_tuned = narrow.models.retrieve(model_id=ALLOWED[1])
    assert type(fine_tuned).__name__ == "FTModelCard"


def test_retrieving_a_model_outside_the_allow_list_raises_403(narrow: Mistral) -> None:
    """The SDK raises its error with status 403 and the key's list named."""
    with pytest.raises(errors.SDKError) as raised:
        narrow.models.retrieve(model_id="mistral-large-latest")
    assert raised.value.status_code == 403
    assert json.loads(raised.value.body)["param"] == "allowed_models"


def test_a_missing_model_is_mistrals_404(gateway: Mistral, direct: Mistral) -> None:
    """An unknown model raises the same 404 through the gateway as straight to Mistral."""
    with pytest.raises(errors.SDKError) as via:
        gateway.models.retrieve(model_id="no-such-model")
    with pytest.raises(errors.SDKError) as ref:
        direct.models.retrieve(model_id="no-such-model")
    assert via.value.status_code == ref.value.status_code == 404
    assert via.value.body == ref.value.body


NOT_EXPOSED: dict[str, Callable[[Mistral], Any]] = {
    # Its own security scheme (a user's token): the gateway refuses it before reading any key.
    "beta.users.get_identity": lambda sdk: sdk.beta.users.get_identity(
        security={"bearer_user_context_auth": "not-a-gateway-key"}
    ),
    "workflows.get_workflows": lambda sdk: sdk.workflows.get_workflows(),
    "models.delete": lambda sdk: sdk.models.delete(model_id="ft:mistral-small-latest:a:b:c"),
}


@pytest.mark.parametrize("operation", sorted(NOT_EXPOSED))
def test_a_not_exposed_sdk_call_raises_403_not_exposed(gateway: Mistral, operation: str) -> None:
    """The SDK raises its error with status 403, code not_exposed, naming the operation."""
    with pytest.raises(errors.MistralError) as raised:
        NOT_EXPOSED[operation](gateway)
    assert raised.value.status_code == 403
    body = json.loads(raised.value.body)
    assert body["code"] == "not_exposed"
    assert body["message"].startswith(f"{operation} is not exposed by this gateway")
    assert raised.value.headers["x-request-id"] == body["request_id"]
