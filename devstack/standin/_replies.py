"""Deterministic assistant turns: the same inputs always give the same reply text and usage.

A reply is a fixed phrase plus words drawn from a small vocabulary with a hash of the input as
the seed. `completion_args.max_tokens` fixes the number of words exactly, which is how benchmarks
ask for N stream events: one `message.output.delta` per word.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._wire import Event, new_id, now

_LEAD = ("Stand-in", "reply:")
_TOOL_LEAD = ("The", "tool", "returned")
_VOCAB = (
    "amber", "anchor", "arrow", "basil", "beacon", "birch", "bright", "cedar", "cloud", "cobalt",
    "comet", "coral", "crisp", "delta", "ember", "fern", "field", "flint", "frost", "garnet",
    "glade", "harbor", "hazel", "indigo", "iris", "ivory", "juniper", "kestrel", "lantern",
    "linen", "lumen", "maple", "meadow", "mint", "nectar", "north", "oak", "onyx", "orbit",
    "pearl", "pine", "prism", "quartz", "quill", "raven", "ridge", "river", "saffron", "sage",
    "slate", "sparrow", "spruce", "stone", "summit", "tide", "timber", "topaz", "umber", "valley",
    "velvet", "willow", "wren", "yarrow", "zephyr",
)  # fmt: skip
# Without max_tokens a reply has between this many and twice as many words.
_BASE_WORDS = 8
# The longest reply, whatever max_tokens says: 10**15 words would stall the stand-in.
_MAX_WORDS = 32_768
# Splits text into word-sized fragments that concatenate back to the original exactly.
_FRAGMENT = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Turn:
    """One assistant turn: its output entries, their stream fragments, and the usage."""

    outputs: list[dict[str, Any]]
    fragments: list[list[str]]  # per output entry: content or arguments pieces, one per token
    usage: dict[str, int]


def entry_text(entry: Mapping[str, Any]) -> str:
    """The words an entry carries, whatever its kind."""
    if entry.get("type") == "function.result":
        return str(entry.get("result", ""))
    if entry.get("type") in ("function.call", "tool.execution"):
        arguments = entry.get("arguments", "")
        return arguments if isinstance(arguments, str) else json.dumps(arguments)
    content = entry.get("content", "")
    if isinstance(content, str):
        return content
    return " ".join(
        chunk["text"]
        for chunk in content
        if isinstance(chunk, dict) and isinstance(chunk.get("text"), str)
    )


def _words(lead: Sequence[str], basis: str, count: int | None) -> list[str]:
    seed = int.from_bytes(hashlib.sha256(basis.encode()).digest()[:8], "big")
    size = count if count is not None else _BASE_WORDS + seed % (_BASE_WORDS + 1)
    size = min(size, _MAX_WORDS)
    rng = random.Random(seed)
    words = list(lead[:size])
    words.extend(rng.choice(_VOCAB) for _ in range(size - len(words)))
    return words


def _fragments(text: str) -> list[str]:
    return _FRAGMENT.findall(text) or ([text] if text else [])


def plan_turn(
    inputs: Sequence[Mapping[str, Any]],
    *,
    model: str,
    agent_id: str | None,
    function_names: Sequence[str],
    completion_args: Mapping[str, Any],
) -> Turn:
    """Answers `inputs` (the new turn, or the entry being replayed on a restart)."""
    basis = "\n".join(entry_text(entry) for entry in inputs)
    last = inputs[-1] if inputs else {}
    stamp = now()
    common: dict[str, Any] = {"object": "entry", "created_at": stamp, "completed_at": stamp}
    owner: dict[str, Any] = {"model": model}
    if agent_id is not None:
        owner["agent_id"] = agent_id

    asks_user = last.get("type", "message.input") == "message.input" and last.get("role") == "user"
    if function_names and asks_user and completion_args.get("tool_choice") != "none":
        arguments = json.dumps({"query": " ".join(basis.split()[:8])})
        output = {
            **common,
            "type": "function.call",
            "id": new_id("fc"),
            "tool_call_id": new_id("call"),
            "name": function_names[0],
            "arguments": arguments,
            **owner,
        }
        pieces = _fragments(arguments)
    else:
        lead: tuple[str, ...] = _LEAD
        if last.get("type") == "function.result":
            lead = (*_TOOL_LEAD, *entry_text(last).split()[:6])
        max_tokens = completion_args.get("max_tokens")
        words = _words(lead, basis, max_tokens if isinstance(max_tokens, int) else None)
        text = " ".join(words)
        output = {
            **common,
            "type": "message.output",
            "id": new_id("msg"),
            "role": "assistant",
            "content": text,
            **owner,
        }
        pieces = [(" " if index else "") + word for index, word in enumerate(words)]

    prompt_tokens = max(1, len(basis.split()))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(pieces),
        "total_tokens": prompt_tokens + len(pieces),
    }
    return Turn(outputs=[output], fragments=[pieces], usage=usage)


def stream_events(conversation_id: str, turn: Turn, extra: Mapping[str, Any]) -> list[Event]:
    """The SSE frames of `turn`, in the order Mistral sends them. `extra` goes into the started
    event (unknown fields there are ignored by the SDK, so pass-through tests can use them)."""
    stamp = now()
    events: list[Event] = [
        (
            "conversation.response.started",
            {
                "type": "conversation.response.started",
                "conversation_id": conversation_id,
                "created_at": stamp,
                **extra,
            },
        )
    ]
    for index, (output, pieces) in enumerate(zip(turn.outputs, turn.fragments, strict=True)):
        owner = {"model": output.get("model"), "agent_id": output.get("agent_id")}
        for piece in pieces:
            # id, name and tool_call_id are repeated on every delta: clients group by them.
            if output["type"] == "function.call":
                data: dict[str, Any] = {
                    "type": "function.call.delta",
                    "id": output["id"],
                    "output_index": index,
                    "name": output["name"],
                    "tool_call_id": output["tool_call_id"],
                    "arguments": piece,
                }
            else:
                data = {
                    "type": "message.output.delta",
                    "id": output["id"],
                    "output_index": index,
                    "content_index": 0,
                    "content": piece,
                    "role": "assistant",
                }
            events.append((data["type"], {**data, **owner, "created_at": stamp}))
    events.append(
        (
            "conversation.response.done",
            {"type": "conversation.response.done", "usage": turn.usage, "created_at": stamp},
        )
    )
    return events
