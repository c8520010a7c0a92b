"""The gateway's refusals of Mistral request bodies and the document's statement of them agree.

The document's body is the SDK model's JSON Schema with `body_rules` folded in (read from
turns, policy and agents). The gateway validates with its own hand checks (fast: no pydantic
on the hot path). On a corpus of bodies the SDK's schema accepts, the document accepts
exactly the bodies the gateway accepts; and no body the document accepts is refused by the
gateway.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import referencing
from referencing.jsonschema import DRAFT202012

from shared.agents.operations import parse_create, parse_update
from shared.conversations.policy import InputPolicy
from shared.conversations.turns import build_turn
from shared.errors import ValidationFailed
from shared.openapi import document
from shared.surface import operations as sdk_operations

DOC = document()
_REGISTRY: referencing.Registry[Any] = referencing.Registry().with_resource(
    "urn:doc", referencing.Resource.from_contents(DOC, default_specification=DRAFT202012)
)
_ABSENT = object()


def _check(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, registry=_REGISTRY)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"urn:doc#/components/schemas/{name}"}


_TEXT = ["hi", "", "bell \x07", "tab\tnew\nline", "c1 \x85"]
_POOLS: dict[str, list[Any]] = {
    "inputs": [
        *_TEXT,
        [],
        5,
        None,
        ["not an entry"],
        *({"role": "user", "content": t} for t in _TEXT),
        [{"role": "user", "content": [{"type": "text", "text": "a\x1b"}]}],
        [{"role": "user", "content": [{"type": "text", "text": "fine"}]}],
        [{"type": "function.result", "tool_call_id": "c", "result": "\x07"}],
        [{"type": "function.result", "tool_call_id": "c", "result": "sunny"}],
    ],
    "model": [_ABSENT, "m", None, 5],
    "agent_id": [_ABSENT, "ag", None, ["ag"]],
    "stream": [_ABSENT, True, False, None, "yes"],
    "store": [_ABSENT, True, None, 1],
    "handoff_execution": [_ABSENT, "client", "bogus", None],
    "agent_version": [_ABSENT, 1, "stable", None, True, 1.5],
    "metadata": [_ABSENT, {}, None, "x"],
    "tool_confirmations": [_ABSENT, [], None, [{"tool_call_id": "c", "confirmation": "allow"}]],
    "from_entry_id": [_ABSENT, "e", None, 5],
    "name": [_ABSENT, "n", " \t", "\u3000", None, 7],
    "description": [_ABSENT, "d", None, 3],
    "instructions": [_ABSENT, "i", None],
    "handoffs": [_ABSENT, ["ag"], None, "ag", [1]],
}
_FIELDS = {
    "conversations.start": (
        "inputs",
        "model",
        "agent_id",
        "stream",
        "store",
        "handoff_execution",
        "agent_version",
        "metadata",
        "name",
        "instructions",
    ),
    "conversations.append": (
        "inputs",
        "stream",
        "store",
        "handoff_execution",
        "tool_confirmations",
        "agent_version",
    ),
    "conversations.restart": ("inputs", "from_entry_id", "stream", "agent_version", "metadata"),
    "agents.create": ("model", "name", "description", "instructions", "handoffs"),
    "agents.update": ("model", "name", "description", "handoffs"),
}
_BODY = {
    "conversations.start": ("POST", "/v1/conversations"),
    "conversations.append": ("POST", "/v1/conversations/{conversation_id}"),
    "conversations.restart": ("POST", "/v1/conversations/{conversation_id}/restart"),
    "agents.create": ("POST", "/v1/agents"),
    "agents.update": ("PATCH", "/v1/agents/{agent_id}"),
}
_POLICY = InputPolicy.from_config("", max_chars=100_000, control_chars="reject")


def _gateway(operation: str) -> Callable[[dict[str, Any]], Any]:
    if operation == "agents.create":
        return parse_create
    if operation == "agents.update":
        return parse_update
    return lambda body: build_turn(_POLICY, operation, "/p", body, None, "c")


def _corpus(operation: str, size: int = 1500) -> list[dict[str, Any]]:
    chooser = random.Random(operation)
    bodies = []
    for _ in range(size):
        body = {}
        for name in _FIELDS[operation]:
            value = chooser.choice(_POOLS[name])
            if value is not _ABSENT:
                body[name] = value
        bodies.append(body)
    return bodies


@pytest.mark.parametrize("operation", sorted(_FIELDS))
def test_rules_accept_exactly_what_the_gateway_accepts(operation: str) -> None:
    """Among bodies the SDK's schema accepts, the document and the gateway's checks give the
    same verdict; a body the document accepts is never refused."""
    method, path = _BODY[operation]
    request = DOC["paths"][path][method.lower()]["requestBody"]["content"]
    name = request["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    models = [o.request_model for o in sdk_operations() if (o.method, o.path) == (method, path)]
    sdk = _check({"anyOf": [_ref(f"Mistral.Request.{m}") for m in models]})
    documented = _check(_ref(name))
    accept = _gateway(operation)
    sdk_valid = disagreements = 0
    for body in _corpus(operation):
        try:
            accept({**body})
            gateway = True
        except ValidationFailed:
            gateway = False
        if documented.is_valid(body):
            assert gateway, body
        if sdk.is_valid(body):
            sdk_valid += 1
            if documented.is_valid(body) is not gateway:
                disagreements += 1
                raise AssertionError((body, "gateway accepts" if gateway else "gateway refuses"))
    # The corpus reaches both sides of the SDK's schema.
    assert sdk_valid > 50
    assert disagreements == 0


def test_text_paths_are_where_the_policy_reads_text() -> None:
    """policy.TEXT_PATHS (what the document marks as user text) are exactly the places the
    input policy reads text from."""
    from shared.conversations import policy

    bodies = [
        {"inputs": "plain"},
        {
            "inputs": [
                {"content": "a", "result": [{"text": "b"}]},
                {"content": [{"text": "c"}], "result": "d"},
            ]
        },
    ]
    visited = {
        tuple("*" if isinstance(part, int) else part for part in loc[1:])
        for body in bodies
        for loc, _, _ in policy._texts(body)
    }
    assert visited == set(policy.TEXT_PATHS)
