"""A turn's token reservation: what it can cost, from what is knowable before Mistral.

The budget check reserves this much before the call and settles it with Mistral's
reported usage afterwards (`shared.limits.ratelimit`). Concurrent turns are admitted
against reservations, not against usage, so a reservation that undercounts lets
them overspend together. It is made of:

    prompt      the new inputs (`text_tokens`, an upper-leaning count: a tokeniser
                gives at least one token per word or punctuation mark, about one per
                four characters of prose, and often one per non-ASCII letter), the
                body's instructions and tools, the agent's instructions and tools,
                and on an append or restart the conversation's last known prompt
                plus the completions after it (from the stored entries' usage),
                which Mistral sends again as history
    completion  `max_tokens` (the body's, else the agent's), else
                TOKEN_RESERVE_COMPLETION
    cap         MODEL_CONTEXT_TOKENS: no turn costs more than the model's window

A turn that sets `max_tokens` therefore never costs more than it reserved but for
the prompt's estimation error, and the README states the bound that follows.

A metered pass-through call (`shared.passthrough`) reserves the same way from its own
body (`call_reservation`): every string of its inputs counted high, plus the body's
`max_tokens` (an agent's, for agents.complete) for the calls that complete, else
TOKEN_RESERVE_COMPLETION; embeddings, classifiers and moderations complete nothing.
A line of a Mistral batch job (`line_reservation`, `shared.resources.pricing`) is priced
as the call it stands for; a line of an endpoint no pass-through serves (conversations)
counts every string of its body, plus its completion.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

from shared.config import Settings
from shared.db import Conn

__all__ = ["call_reservation", "line_reservation", "text_tokens", "turn_reservation"]

# A run of ASCII letters or digits is one piece; anything else but spaces, one each.
_PIECE = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")
# The same count for ASCII text without the regex: each character mapped to its class
# (a: letter or digit, space: whitespace as `\s` reads it, dot: anything else), then
# the dots plus the runs of `a`, each counted at its first character.
_ALNUM = frozenset(string.ascii_letters + string.digits)
_CLASSES = str.maketrans(
    {chr(c): "a" if chr(c) in _ALNUM else " " if chr(c).isspace() else "." for c in range(128)}
)
# What an entry costs beyond its text (role, separators), as chat templates add.
_PER_ENTRY = 4
# Entries read back to find the last turn's prompt: a turn has a handful.
_LOOKBACK = 64
# Body fields a turn's prompt is made of (every string counted).
_TURN_INPUTS = ("inputs", "instructions", "tools")


def text_tokens(text: str) -> int:
    """An estimate of `text`'s tokens that leans high: max(pieces, characters / 4)."""
    if not text:
        return 0
    return max(_pieces(text), (len(text) + 3) // 4)


def _pieces(text: str) -> int:
    """`len(_PIECE.findall(text))`. A budgeted call counts every string of its body, and
    on a long conversation the regex cost about as much as the rest of a chat call; for
    ASCII text `str.translate` and `str.count` give the same count without building the
    pieces (`python -m bench.token_count` measures both; bench/RESULTS.md, note 25; the
    same count: tests/unit/test_token_count.py). Other text keeps the regex."""
    if not text.isascii():
        return len(_PIECE.findall(text))
    classes = text.translate(_CLASSES)
    starts = classes.count(" a") + classes.count(".a") + classes.startswith("a")
    return classes.count(".") + starts


def _value_tokens(value: Any) -> int:
    """The tokens of every string in a JSON value (inputs, tools), plus entry overhead."""
    total = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            total += text_tokens(item)
        elif isinstance(item, dict):
            total += _PER_ENTRY
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif item is not None:
            total += 1
    return total


def _max_tokens(args: Any) -> int | None:
    value = args.get("max_tokens") if isinstance(args, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def turn_reservation(
    conn: Conn | None,
    settings: Settings,
    owner: str,
    body: dict[str, Any],
    conversation_id: str | None,
    agent: Mapping[str, Any] | None = None,
) -> int:
    """The tokens to reserve for a turn with this body (on that conversation, if any,
    read through `conn`), with the agent its body names (`store.require_agent`'s row)."""
    prompt = _PER_ENTRY + _fields_tokens(body, _TURN_INPUTS)
    completion = _max_tokens(body.get("completion_args"))
    if agent is not None:
        prompt, completion = _with_agent(agent, prompt, completion)
    if conversation_id is not None:
        assert conn is not None, "a turn on a conversation reads its history's usage"
        prompt += _history_tokens(conn, owner, conversation_id)
    if completion is None:
        completion = settings.token_reserve_completion
    return _bounded(settings, prompt + completion)


def _fields_tokens(body: dict[str, Any], names: tuple[str, ...]) -> int:
    """The tokens of the body's fields a prompt is made of (absent ones count nothing)."""
    return sum(_value_tokens(body.get(name)) for name in names)


def _with_agent(
    agent: Mapping[str, Any], prompt: int, completion: int | None
) -> tuple[int, int | None]:
    """The prompt with the agent's instructions and tools added, and the completion
    bound: the body's, else the agent's `max_tokens`."""
    prompt += _value_tokens(agent["instructions"]) + _value_tokens(agent["tools"])
    if completion is None:
        completion = _max_tokens(_as_json(agent["completion_args"]))
    return prompt, completion


def _bounded(settings: Settings, tokens: int) -> int:
    """At least one token, never more than the model's window."""
    return max(1, min(tokens, settings.model_context_tokens))


def _history_tokens(conn: Conn, owner: str, conversation_id: str) -> int:
    """The conversation's last known prompt and the completions since: what Mistral will
    send it again. Read backwards from the stored entries' usage."""
    rows = conn.all(
        "SELECT prompt_tokens, completion_tokens FROM conversation_entries"
        " WHERE conversation_id = :id AND owner_id = :owner ORDER BY seq DESC LIMIT :n",
        id=conversation_id,
        owner=owner,
        n=_LOOKBACK,
    )
    total = 0
    for row in rows:
        total += int(row["completion_tokens"])
        if row["prompt_tokens"]:
            return total + int(row["prompt_tokens"])
    return total


def _as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# Body fields a pass-through call's prompt is made of, per operation (every string counted).
_CALL_INPUTS: dict[str, tuple[str, ...]] = {
    "chat.complete": ("messages", "tools", "prediction", "response_format"),
    "agents.complete": ("messages", "tools", "prediction", "response_format"),
    "fim.complete": ("prompt", "suffix"),
    "embeddings.create": ("input",),
    "classifiers.classify": ("input",),
    "classifiers.classify_chat": ("input",),
    "classifiers.moderate": ("input",),
    "classifiers.moderate_chat": ("input",),
    "ocr.process": ("document_annotation_prompt",),
    "audio.speech.complete": ("input",),
}
# Calls whose answer is generated text or audio, whose length the body may bound.
_COMPLETES = frozenset(
    {
        "chat.complete",
        "agents.complete",
        "fim.complete",
        "audio.transcriptions.complete",
        "audio.speech.complete",
    }
)


def call_reservation(
    settings: Settings,
    operation: str,
    body: dict[str, Any],
    agent: Mapping[str, Any] | None = None,
) -> int:
    """The tokens to reserve for a metered pass-through call with this body; for
    agents.complete, with its agent (`store.require_agent`'s row: instructions, tools,
    max_tokens)."""
    prompt = _fields_tokens(body, _CALL_INPUTS.get(operation, ()))
    completion = _max_tokens(body)
    if operation == "agents.complete" and agent is not None:
        prompt, completion = _with_agent(agent, prompt, completion)
    if operation not in _COMPLETES:
        completion = 0
    elif completion is None:
        completion = settings.token_reserve_completion
    return _bounded(settings, prompt + completion)


def line_reservation(
    settings: Settings,
    operation: str | None,
    body: Any,
    agent: Mapping[str, Any] | None = None,
) -> int:
    """The tokens to reserve for one line of a batch job: the body of the call `operation`
    (its endpoint's) would make, as `call_reservation` prices it. An operation no metered
    pass-through serves (None: conversations, say) counts every string of the body, and
    its `max_tokens` or TOKEN_RESERVE_COMPLETION. A body that is no object costs nothing
    (Mistral fails that line)."""
    if not isinstance(body, dict):
        return 0
    if operation in _CALL_INPUTS or operation in _COMPLETES:
        return call_reservation(settings, str(operation), body, agent)
    completion = _max_tokens(body) or settings.token_reserve_completion
    return _bounded(settings, _value_tokens(body) + completion)
