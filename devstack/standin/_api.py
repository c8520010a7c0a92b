"""The API operations: parse and validate a request, ask the store, shape the answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _models
from . import _validate as v
from ._completions import JSON_HANDLERS, transcription
from ._replies import Turn, stream_events
from ._resources import OPERATIONS as RESOURCE_OPERATIONS
from ._store import Store
from ._wire import ApiError, Reply, bad_request

# A top-level request field copied into the answer, so tests can prove that unknown fields
# travel through a proxy in both directions.
ECHO_FIELD = "x_standin_echo"
# page_token values are opaque to clients; this one is an offset behind a prefix.
_CURSOR_PREFIX = "pt_"


@dataclass(frozen=True)
class Call:
    operation: str
    params: Mapping[str, str]
    query: Mapping[str, list[str]]
    body: bytes
    commit: bool  # False: answer in full but change nothing (see _store)
    content_type: str = ""


def _json(call: Call) -> Any:
    if not call.body.strip():
        raise ApiError(
            422, {"detail": [{"loc": ["body"], "msg": "Field required", "type": "missing"}]}
        )
    try:
        return json.loads(call.body)
    except ValueError as error:  # also covers bad UTF-8
        raise bad_request(f"Invalid JSON body: {error}", "invalid_json") from None


def _echo(body: Mapping[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    if ECHO_FIELD in body:
        payload[ECHO_FIELD] = body[ECHO_FIELD]
    return payload


def _turn_reply(body: Mapping[str, Any], conversation_id: str, turn: Turn) -> Reply:
    """Streams and plain answers carry the same turn, so history does not depend on `stream`."""
    if body.get("stream") is True:
        extra = {ECHO_FIELD: body[ECHO_FIELD]} if ECHO_FIELD in body else {}
        return Reply(200, events=stream_events(conversation_id, turn, extra))
    payload = {
        "object": "conversation.response",
        "conversation_id": conversation_id,
        "outputs": turn.outputs,
        "usage": turn.usage,
    }
    return Reply(200, _echo(body, payload))


def _stored(call: Call, body: Mapping[str, Any]) -> bool:
    # `store: false` asks Mistral not to keep the turn, exactly like an uncommitted call.
    return call.commit and body.get("store") is not False


def _start(store: Store, call: Call) -> Reply:
    body = v.start_request(_json(call))
    conversation_id, turn = store.start(body, _stored(call, body))
    return _turn_reply(body, conversation_id, turn)


def _append(store: Store, call: Call) -> Reply:
    body = v.append_request(_json(call))
    turn = store.append(call.params["conversation_id"], body, _stored(call, body))
    return _turn_reply(body, call.params["conversation_id"], turn)


def _restart(store: Store, call: Call) -> Reply:
    body = v.restart_request(_json(call))
    conversation_id, turn = store.restart(call.params["conversation_id"], body, _stored(call, body))
    return _turn_reply(body, conversation_id, turn)


def _list_conversations(store: Store, call: Call) -> Reply:
    page = v.query_int(call.query, "page", 0)
    page_size = v.query_int(call.query, "page_size", 100, minimum=1)
    return Reply(200, store.list_conversations(page, page_size, v.query_metadata(call.query)))


def _get_conversation(store: Store, call: Call) -> Reply:
    return Reply(200, store.get_conversation(call.params["conversation_id"]))


def _history(store: Store, call: Call) -> Reply:
    conversation_id = call.params["conversation_id"]
    payload = {
        "object": "conversation.history",
        "conversation_id": conversation_id,
        "entries": store.entries(conversation_id),
    }
    return Reply(200, payload)


def _messages(store: Store, call: Call) -> Reply:
    conversation_id = call.params["conversation_id"]
    payload = {
        "object": "conversation.messages",
        "conversation_id": conversation_id,
        "messages": store.messages(conversation_id),
    }
    return Reply(200, payload)


def _delete_conversation(store: Store, call: Call) -> Reply:
    store.delete_conversation(call.params["conversation_id"], call.commit)
    return Reply(204)


def _create_agent(store: Store, call: Call) -> Reply:
    body = v.agent_request(_json(call), create=True)
    return Reply(200, _echo(body, store.create_agent(body, call.commit)))


def _filtered_agents(store: Store, call: Call) -> list[dict[str, Any]]:
    return store.list_agents(
        deployment_chat=v.query_bool(call.query, "deployment_chat"),
        sources=call.query.get("sources", []),
        name=v.query_str(call.query, "name"),
        search=v.query_str(call.query, "search"),
        agent_id=v.query_str(call.query, "id"),
        metadata=v.query_metadata(call.query),
    )


def _list_agents(store: Store, call: Call) -> Reply:
    page = v.query_int(call.query, "page", 0)
    page_size = v.query_int(call.query, "page_size", 20, minimum=1)
    agents = _filtered_agents(store, call)
    return Reply(200, agents[page * page_size : (page + 1) * page_size])


def _list_agent_pages(store: Store, call: Call) -> Reply:
    page_size = v.query_int(call.query, "page_size", 20, minimum=1)
    token = v.query_str(call.query, "page_token")
    offset = 0
    if token:
        raw = token.removeprefix(_CURSOR_PREFIX)
        if not token.startswith(_CURSOR_PREFIX) or not raw.isdigit():
            raise bad_request(f"Invalid page_token {token!r}", "invalid_page_token")
        offset = int(raw)
    agents = _filtered_agents(store, call)
    end = offset + page_size
    # The SDK's next() stops by itself on a short page; the token must still be null at the end.
    next_token = f"{_CURSOR_PREFIX}{end}" if end < len(agents) else None
    return Reply(200, {"object": "list", "data": agents[offset:end], "next_page_token": next_token})


def _get_agent(store: Store, call: Call) -> Reply:
    version = v.query_str(call.query, "agent_version")
    return Reply(200, store.get_agent(call.params["agent_id"], version))


def _update_agent(store: Store, call: Call) -> Reply:
    body = v.agent_request(_json(call), create=False)
    return Reply(200, _echo(body, store.update_agent(call.params["agent_id"], body, call.commit)))


def _delete_agent(store: Store, call: Call) -> Reply:
    store.delete_agent(call.params["agent_id"], call.commit)
    return Reply(204)


def _update_version(store: Store, call: Call) -> Reply:
    version = v.query_int(call.query, "version", None)
    return Reply(200, store.set_current_version(call.params["agent_id"], version, call.commit))


def _list_versions(store: Store, call: Call) -> Reply:
    page = v.query_int(call.query, "page", 0)
    page_size = v.query_int(call.query, "page_size", 20, minimum=1)
    return Reply(200, store.list_versions(call.params["agent_id"], page, page_size))


def _get_version(store: Store, call: Call) -> Reply:
    version = v.path_int(call.params["version"], "version")
    return Reply(200, store.get_agent(call.params["agent_id"], version))


def _create_alias(store: Store, call: Call) -> Reply:
    alias = v.query_str(call.query, "alias", required=True) or ""
    version = v.query_int(call.query, "version", None)
    return Reply(200, store.put_alias(call.params["agent_id"], alias, version, call.commit))


def _list_aliases(store: Store, call: Call) -> Reply:
    return Reply(200, store.list_aliases(call.params["agent_id"]))


def _delete_alias(store: Store, call: Call) -> Reply:
    alias = v.query_str(call.query, "alias", required=True) or ""
    store.delete_alias(call.params["agent_id"], alias, call.commit)
    return Reply(204)


def _list_models(store: Store, call: Call) -> Reply:
    return _models.list_models()


def _retrieve_model(store: Store, call: Call) -> Reply:
    return _models.retrieve_model(call.params["model_id"])


_HANDLERS: dict[str, Callable[[Store, Call], Reply]] = {
    "conversations.start": _start,
    "conversations.append": _append,
    "conversations.restart": _restart,
    "conversations.list": _list_conversations,
    "conversations.get": _get_conversation,
    "conversations.history": _history,
    "conversations.messages": _messages,
    "conversations.delete": _delete_conversation,
    "agents.create": _create_agent,
    "agents.list": _list_agents,
    "agents.list_pages": _list_agent_pages,
    "agents.get": _get_agent,
    "agents.update": _update_agent,
    "agents.delete": _delete_agent,
    "agents.update_version": _update_version,
    "agents.list_versions": _list_versions,
    "agents.get_version": _get_version,
    "agents.create_alias": _create_alias,
    "agents.list_aliases": _list_aliases,
    "agents.delete_alias": _delete_alias,
    "models.list": _list_models,
    "models.retrieve": _retrieve_model,
}


def _metered(operation: str) -> Callable[[Store, Call], Reply]:
    """A stateless metered operation (`_completions`), fed its parsed JSON body."""
    answer = JSON_HANDLERS[operation]
    return lambda store, call: answer(store, _json(call))


_HANDLERS.update({operation: _metered(operation) for operation in JSON_HANDLERS})
_HANDLERS["audio.transcriptions.complete"] = lambda store, call: transcription(
    store, call.body, call.content_type
)


def handle(store: Store, call: Call) -> Reply:
    try:
        resource = RESOURCE_OPERATIONS.get(call.operation)
        if resource is not None:
            store.changes += 1
            return resource(
                store.resources, call.params, call.query, call.body, call.content_type, call.commit
            )
        return _HANDLERS[call.operation](store, call)
    except ApiError as error:
        return error.reply()
