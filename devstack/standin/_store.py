"""The in-memory conversations and agents, behind one lock.

Every mutating method takes `commit`: the answer is computed in full either way, but only a
committed call changes the store. That is how faults such as a stream cut give a client a real
looking answer that Mistral never kept.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from ._replies import Turn, plan_turn
from ._resources import Resources
from ._wire import Reply, new_id, not_found, now

_ENTRY_PREFIX = {
    "message.input": "msg",
    "message.output": "msg",
    "function.call": "fc",
    "function.result": "fr",
    "tool.execution": "tool",
    "agent.handoff": "handoff",
}
_MESSAGE_TYPES = ("message.input", "message.output")
_MODEL_FIELDS = ("instructions", "tools", "completion_args", "guardrails")
_AGENT_FIELDS = (
    "model",
    "name",
    "instructions",
    "tools",
    "completion_args",
    "guardrails",
    "description",
    "handoffs",
    "metadata",
    "version_message",
    "deployment_chat",
)
# Required in the SDK's Agent model (or not nullable there): an update's null leaves them as is.
_KEEP_ON_NULL = frozenset({"model", "name", "deployment_chat", "tools", "completion_args"})


@dataclass
class _Conversation:
    id: str
    seq: int
    created_at: str
    updated_at: str
    record: dict[str, Any]  # the public settings: model or agent_id, name, metadata, ...
    model: str  # the model that answers, also for agent conversations
    function_names: list[str]
    completion_args: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "object": "conversation",
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            **self.record,
        }


@dataclass
class _Version:
    fields: dict[str, Any]
    updated_at: str


@dataclass
class _Agent:
    id: str
    seq: int
    created_at: str
    current: int
    versions: dict[int, _Version]
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def public(self, version: int) -> dict[str, Any]:
        snapshot = self.versions[version]
        return {
            "object": "agent",
            "id": self.id,
            **snapshot.fields,
            "version": version,
            "versions": sorted(self.versions),
            "created_at": self.created_at,
            "updated_at": snapshot.updated_at,
            "source": "api",
        }

    def resolve(self, ref: int | str | None) -> int:
        """A version from an int, an alias, a digit string, or None for the current one."""
        if ref is None:
            return self.current
        if isinstance(ref, str):
            alias = self.aliases.get(ref)
            if alias is not None:
                return int(alias["version"])
            if not (ref.isascii() and ref.isdigit()):
                raise not_found("Agent version alias", ref)
            ref = int(ref)
        if ref not in self.versions:
            raise not_found("Agent version", str(ref))
        return ref


def _function_names(tools: Any) -> list[str]:
    return [
        tool["function"]["name"]
        for tool in tools or ()
        if tool.get("type") == "function" and isinstance(tool.get("function"), dict)
    ]


def _input_entries(inputs: Any) -> list[dict[str, Any]]:
    """Inputs as stored history entries: a bare string is one user message; every entry gets
    its own id and timestamp, the way the SDK sees them again in history."""
    if inputs is None:
        return []
    if isinstance(inputs, str):
        inputs = [{"role": "user", "content": inputs}]
    stamp = now()
    entries = []
    for entry in inputs:
        kind = entry.get("type", "message.input")
        stored = {"object": "entry", "type": kind, **entry, "created_at": stamp}
        if kind == "message.input":
            stored.setdefault("prefix", False)
        stored["id"] = new_id(_ENTRY_PREFIX[kind])
        entries.append(stored)
    return entries


def _page(items: Sequence[Any], page: int, page_size: int) -> list[Any]:
    return list(items[page * page_size : (page + 1) * page_size])


def _matches(metadata: Any, wanted: Mapping[str, Any] | None) -> bool:
    if not wanted:
        return True
    return isinstance(metadata, dict) and all(metadata.get(k) == v for k, v in wanted.items())


F = TypeVar("F", bound=Callable[..., Any])
_SNAPSHOT_VERSION = 1


def _mutating(method: F) -> F:
    """Counts the calls that may change the store, so a persister knows when to write it."""

    @functools.wraps(method)
    def counted(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.changes += 1

    return counted  # type: ignore[return-value]


class Store:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._conversations: dict[str, _Conversation] = {}
        self._agents: dict[str, _Agent] = {}
        # Files, libraries, documents, accesses, batch jobs (their own lock); a batch
        # job's lines are answered by the store's own operations.
        self.resources = Resources(self._batch_line)
        # Grows with every call that may have changed the store (see _persist).
        self.changes = 0

    def _batch_line(self, operation: str, body: dict[str, Any]) -> Reply:
        # Imported here: `_completions` reads this module's Store.
        from ._completions import JSON_HANDLERS

        return JSON_HANDLERS[operation](self, body)

    @_mutating
    def reset(self) -> None:
        with self._lock:
            self._conversations.clear()
            self._agents.clear()
        self.resources.reset()

    def snapshot(self) -> dict[str, Any]:
        """Everything the store holds, as JSON-ready data."""
        with self._lock:
            return {
                "version": _SNAPSHOT_VERSION,
                "conversations": [asdict(c) for c in self._conversations.values()],
                "agents": [
                    {**asdict(a), "versions": [[n, asdict(v)] for n, v in a.versions.items()]}
                    for a in self._agents.values()
                ],
                "resources": self.resources.snapshot(),
            }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace what the store holds by a `snapshot()`."""
        if snapshot.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown stand-in snapshot version {snapshot.get('version')!r}")
        conversations = [_Conversation(**c) for c in snapshot["conversations"]]
        agents = [
            _Agent(**{**a, "versions": {int(n): _Version(**v) for n, v in a["versions"]}})
            for a in snapshot["agents"]
        ]
        with self._lock:
            self._conversations = {c.id: c for c in conversations}
            self._agents = {a.id: a for a in agents}
            seqs = [c.seq for c in conversations] + [a.seq for a in agents]
            self._seq = itertools.count(max(seqs, default=-1) + 1)
        self.resources.restore(snapshot.get("resources") or {})

    # -- conversations -------------------------------------------------------------------------

    def _conversation(self, conversation_id: str) -> _Conversation:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise not_found("Conversation", conversation_id)
        return conversation

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise not_found("Agent", agent_id)
        return agent

    def _run_turn(
        self,
        conversation: _Conversation,
        inputs: list[dict[str, Any]],
        completion_args: Mapping[str, Any] | None,
        commit: bool,
    ) -> Turn:
        # Without new inputs (tool confirmations, a bare restart) the last kept entry is answered.
        basis = inputs or conversation.entries[-1:]
        turn = plan_turn(
            basis,
            model=conversation.model,
            agent_id=conversation.record.get("agent_id"),
            function_names=conversation.function_names,
            completion_args={**conversation.completion_args, **(completion_args or {})},
        )
        if commit:
            conversation.entries.extend(inputs)
            conversation.entries.extend(turn.outputs)
            conversation.updated_at = now()
        return turn

    @_mutating
    def start(self, request: Mapping[str, Any], commit: bool) -> tuple[str, Turn]:
        stamp = now()
        record = {key: request.get(key) for key in ("name", "description", "metadata")}
        with self._lock:
            if request.get("agent_id") is not None:
                agent = self._agent(request["agent_id"])
                version = agent.resolve(request.get("agent_version"))
                settings = agent.versions[version].fields
                record.update(agent_id=agent.id, agent_version=version)
            else:
                settings = {key: request.get(key) for key in ("model", *_MODEL_FIELDS)}
                record.update(settings)
            conversation = _Conversation(
                id=new_id("conv"),
                seq=next(self._seq),
                created_at=stamp,
                updated_at=stamp,
                record=record,
                model=settings["model"],
                function_names=_function_names(settings.get("tools")),
                completion_args=dict(settings.get("completion_args") or {}),
            )
            turn = self._run_turn(
                conversation,
                _input_entries(request["inputs"]),
                request.get("completion_args"),
                True,
            )
            if commit:
                self._conversations[conversation.id] = conversation
        return conversation.id, turn

    @_mutating
    def append(self, conversation_id: str, request: Mapping[str, Any], commit: bool) -> Turn:
        with self._lock:
            conversation = self._conversation(conversation_id)
            return self._run_turn(
                conversation,
                _input_entries(request.get("inputs")),
                request.get("completion_args"),
                commit,
            )

    @_mutating
    def restart(
        self, conversation_id: str, request: Mapping[str, Any], commit: bool
    ) -> tuple[str, Turn]:
        stamp = now()
        with self._lock:
            source = self._conversation(conversation_id)
            ids = [entry["id"] for entry in source.entries]
            if request["from_entry_id"] not in ids:
                raise not_found("Entry", request["from_entry_id"])
            kept = source.entries[: ids.index(request["from_entry_id"]) + 1]
            record = dict(source.record)
            if request.get("metadata") is not None:
                record["metadata"] = request["metadata"]
            conversation = _Conversation(
                id=new_id("conv"),
                seq=next(self._seq),
                created_at=stamp,
                updated_at=stamp,
                record=record,
                model=source.model,
                function_names=source.function_names,
                completion_args=source.completion_args,
                entries=list(kept),
            )
            if request.get("agent_version") is not None and "agent_id" in record:
                agent = self._agent(record["agent_id"])
                version = agent.resolve(request["agent_version"])
                settings = agent.versions[version].fields
                record["agent_version"] = version
                conversation.model = settings["model"]
                conversation.function_names = _function_names(settings.get("tools"))
                conversation.completion_args = dict(settings.get("completion_args") or {})
            turn = self._run_turn(
                conversation,
                _input_entries(request.get("inputs")),
                request.get("completion_args"),
                True,
            )
            if commit:
                self._conversations[conversation.id] = conversation
        return conversation.id, turn

    def list_conversations(
        self, page: int, page_size: int, metadata: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        with self._lock:
            found = sorted(
                (
                    c
                    for c in self._conversations.values()
                    if _matches(c.record.get("metadata"), metadata)
                ),
                key=lambda c: c.seq,
                reverse=True,
            )
            return [c.public() for c in _page(found, page, page_size)]

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        with self._lock:
            return self._conversation(conversation_id).public()

    def entries(self, conversation_id: str, types: Sequence[str] | None = None) -> list[Any]:
        with self._lock:
            entries = self._conversation(conversation_id).entries
            return [e for e in entries if types is None or e["type"] in types]

    def messages(self, conversation_id: str) -> list[Any]:
        return self.entries(conversation_id, _MESSAGE_TYPES)

    @_mutating
    def delete_conversation(self, conversation_id: str, commit: bool) -> None:
        with self._lock:
            self._conversation(conversation_id)
            if commit:
                del self._conversations[conversation_id]

    # -- agents --------------------------------------------------------------------------------

    @_mutating
    def create_agent(self, request: Mapping[str, Any], commit: bool) -> dict[str, Any]:
        stamp = now()
        fields = {key: request.get(key) for key in _AGENT_FIELDS}
        fields["tools"] = fields["tools"] or []
        fields["completion_args"] = fields["completion_args"] or {}
        fields["deployment_chat"] = False
        with self._lock:
            agent = _Agent(
                id=new_id("ag"),
                seq=next(self._seq),
                created_at=stamp,
                current=0,
                versions={0: _Version(fields, stamp)},
            )
            if commit:
                self._agents[agent.id] = agent
        return agent.public(0)

    def list_agents(
        self,
        *,
        deployment_chat: bool | None,
        sources: Sequence[str],
        name: str | None,
        search: str | None,
        agent_id: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """Current versions of the matching agents, newest first."""
        if sources and "api" not in sources:
            return []
        with self._lock:
            found = []
            for agent in sorted(self._agents.values(), key=lambda a: a.seq, reverse=True):
                public = agent.public(agent.current)
                text = f"{public['name']} {public.get('description') or ''}".lower()
                if (
                    (deployment_chat is None or public["deployment_chat"] == deployment_chat)
                    and (name is None or public["name"] == name)
                    and (search is None or search.lower() in text)
                    and (agent_id is None or agent.id == agent_id)
                    and _matches(public.get("metadata"), metadata)
                ):
                    found.append(public)
            return found

    def get_agent(self, agent_id: str, version: int | str | None) -> dict[str, Any]:
        with self._lock:
            agent = self._agent(agent_id)
            return agent.public(agent.resolve(version))

    @_mutating
    def update_agent(
        self, agent_id: str, request: Mapping[str, Any], commit: bool
    ) -> dict[str, Any]:
        with self._lock:
            agent = self._agent(agent_id)
            fields = dict(agent.versions[agent.current].fields)
            for key in _AGENT_FIELDS:
                if key in request and not (request[key] is None and key in _KEEP_ON_NULL):
                    fields[key] = request[key]
            version = max(agent.versions) + 1
            # An uncommitted update answers from a copy, so the agent itself stays as it was.
            target = agent if commit else replace(agent, versions=dict(agent.versions))
            target.versions[version] = _Version(fields, now())
            target.current = version
            return target.public(version)

    @_mutating
    def delete_agent(self, agent_id: str, commit: bool) -> None:
        with self._lock:
            self._agent(agent_id)
            if commit:
                del self._agents[agent_id]

    @_mutating
    def set_current_version(self, agent_id: str, version: int, commit: bool) -> dict[str, Any]:
        with self._lock:
            agent = self._agent(agent_id)
            version = agent.resolve(version)
            if commit:
                agent.current = version
            return agent.public(version)

    def list_versions(self, agent_id: str, page: int, page_size: int) -> list[dict[str, Any]]:
        with self._lock:
            agent = self._agent(agent_id)
            newest_first = sorted(agent.versions, reverse=True)
            return [agent.public(v) for v in _page(newest_first, page, page_size)]

    @_mutating
    def put_alias(self, agent_id: str, alias: str, version: int, commit: bool) -> dict[str, Any]:
        stamp = now()
        with self._lock:
            agent = self._agent(agent_id)
            version = agent.resolve(version)
            existing = agent.aliases.get(alias)
            created = existing["created_at"] if existing else stamp
            record = {
                "alias": alias,
                "version": version,
                "created_at": created,
                "updated_at": stamp,
            }
            if commit:
                agent.aliases[alias] = record
            return dict(record)

    def list_aliases(self, agent_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._agent(agent_id).aliases.values()]

    @_mutating
    def delete_alias(self, agent_id: str, alias: str, commit: bool) -> None:
        with self._lock:
            agent = self._agent(agent_id)
            if alias not in agent.aliases:
                raise not_found("Agent version alias", alias)
            if commit:
                del agent.aliases[alias]
