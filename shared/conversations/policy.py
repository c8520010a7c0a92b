"""The input policy: length limits, control characters, and watched patterns.

This is a tripwire, not a defence: a determined prompt injection will not
match a phrase list. What it gives is a signal (every hit is logged and
counted) and a place for a team to block inputs it never wants sent.

Patterns are matched case-insensitively on the NFKC-normalised text with any
run of whitespace allowed between words, so changing case, doubling spaces or
using full-width letters does not slip past (the seed's `str.replace` could be
dodged by all three). Each pattern has an action: `log` (send unchanged),
`redact` (replace the match), or `reject` (422).
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from shared.errors import ConfigError, ValidationFailed, field_error

_events = logging.getLogger("gateway.events")

__all__ = [
    "CONTROL_CHARS",
    "DEFAULT_PATTERNS",
    "InputPolicy",
    "PolicyHit",
    "Rule",
    "TEXT_PATHS",
    "text_schema",
    "log_hit",
]

REDACTED = "[redacted]"
ACTIONS = ("log", "redact", "reject")
# The seed's phrases, kept as the default watch list.
DEFAULT_PATTERNS = (
    {"pattern": "ignore previous instructions", "action": "log"},
    {"pattern": "ignore all previous instructions", "action": "log"},
    {"pattern": "system override", "action": "log"},
    {"pattern": "admin mode", "action": "log"},
)
# C0 and C1 controls but tab, newline and carriage return, and DEL: a character class's
# inside, valid both for Python's re and as a JSON Schema (ECMA-262) pattern.
CONTROL_CHARS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_CONTROL = re.compile(f"[{CONTROL_CHARS}]")


@dataclass(frozen=True)
class Rule:
    name: str
    regex: re.Pattern[str]
    action: str


@dataclass(frozen=True)
class PolicyHit:
    rule: str
    action: str
    loc: tuple[str | int, ...]


def _compile(phrase: str) -> re.Pattern[str]:
    words = unicodedata.normalize("NFKC", phrase).split()
    return re.compile(r"\s+".join(re.escape(w) for w in words), re.IGNORECASE)


class InputPolicy:
    def __init__(self, rules: list[Rule], *, max_chars: int, control_chars: str = "reject") -> None:
        self.rules = rules
        self.max_chars = max_chars
        self.control_chars = control_chars

    @classmethod
    def from_config(cls, patterns_json: str, *, max_chars: int, control_chars: str) -> InputPolicy:
        """Rules from INPUT_POLICY_PATTERNS: a JSON list of {pattern, action}."""
        try:
            raw = json.loads(patterns_json) if patterns_json else list(DEFAULT_PATTERNS)
            rules = [
                Rule(str(item["pattern"]), _compile(str(item["pattern"])), str(item["action"]))
                for item in raw
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                "INPUT_POLICY_PATTERNS: expected a JSON list of {pattern, action}"
            ) from exc
        bad = [r.action for r in rules if r.action not in ACTIONS]
        if bad:
            raise ConfigError(f"INPUT_POLICY_PATTERNS: unknown action(s) {bad}")
        if any(not r.name.split() for r in rules):
            # An empty pattern matches every input: a typo would block (or redact) everything.
            raise ConfigError("INPUT_POLICY_PATTERNS: a pattern is empty")
        return cls(rules, max_chars=max_chars, control_chars=control_chars)

    def apply(self, body: dict[str, Any]) -> tuple[bool, list[PolicyHit]]:
        """Check (and redact in place) the body's inputs; 422 if any rule rejects.

        Returns whether the body changed, and every hit (each already logged).
        """
        hits: list[PolicyHit] = []
        problems: list[dict[str, Any]] = []
        changed = False
        total = 0
        for loc, text, put in _texts(body):
            total += len(text)
            if _CONTROL.search(text):
                if self.control_chars == "reject":
                    problems.append(
                        field_error(loc, "control characters are not allowed", "control_chars")
                    )
                elif self.control_chars == "strip":
                    text = _CONTROL.sub("", text)
                    put(text)
                    changed = True
            normal = unicodedata.normalize("NFKC", text)
            for rule in self.rules:
                if not rule.regex.search(normal):
                    continue
                hits.append(PolicyHit(rule.name, rule.action, loc))
                if rule.action == "reject":
                    problems.append(
                        field_error(loc, "the input matches a blocked pattern", "input_policy")
                    )
                elif rule.action == "redact":
                    text = _redact(text, rule.regex)
                    normal = unicodedata.normalize("NFKC", text)
                    put(text)
                    changed = True
        if total > self.max_chars:
            problems.append(
                field_error(
                    ("body", "inputs"),
                    f"inputs hold {total} characters; the limit is {self.max_chars}",
                    "too_long",
                )
            )
        # Every hit is logged here, rejected ones included (the log-based metric counts them).
        for hit in hits:
            log_hit(hit)
        if problems:
            raise ValidationFailed(problems)
        return changed, hits


def _redact(text: str, regex: re.Pattern[str]) -> str:
    """`text` with each match of `regex` (found on the NFKC form) replaced, the rest as sent.

    The caller's text is not rewritten into its normalised form: only the matched span
    changes, so full-width letters, ligatures or superscripts elsewhere reach Mistral as
    written. Each character (with the combining marks that follow it) is normalised on its
    own, which keeps a map from the normalised text back to the original.
    """
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and unicodedata.combining(text[j]):
            j += 1
        piece = unicodedata.normalize("NFKC", text[i:j])
        pieces.append(piece)
        starts += [i] * len(piece)
        ends += [j] * len(piece)
        i = j
    found = regex.finditer("".join(pieces))
    spans = [(starts[m.start()], ends[m.end() - 1]) for m in found if m.end() > m.start()]
    if not spans:
        # Composition across characters (rare: Hangul jamo) hid the match piecewise;
        # redacting the normalised text still never lets it through.
        return regex.sub(REDACTED, unicodedata.normalize("NFKC", text))
    out: list[str] = []
    done = 0
    for start, end in spans:
        out += [text[done : max(start, done)], REDACTED]
        done = max(end, done)
    out.append(text[done:])
    return "".join(out)


def log_hit(hit: PolicyHit) -> None:
    """One `input_policy` line per hit (the log-based metric counts them); never the text.

    Written as `observability.log_event` writes an event, on its logger: the policy is
    part of the settings (`shared.config` checks its patterns), below observability.
    """
    fields = {
        "event": "input_policy",
        "pattern": hit.rule,
        "action": hit.action,
        "loc": ".".join(str(p) for p in hit.loc),
    }
    _events.warning("input_policy", extra={"json_fields": fields})


Setter = Callable[[str], None]


def _texts(body: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str, Setter]]:
    """Every piece of user text in `inputs`, with a way to replace it in place."""
    loc: tuple[str | int, ...] = ("body", "inputs")
    value = body.get("inputs")
    if isinstance(value, str):
        yield loc, value, _setter(body, "inputs")
        return
    if not isinstance(value, list):
        return
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            continue
        for key in ("content", "result"):
            field = entry.get(key)
            if isinstance(field, str):
                yield (*loc, i, key), field, _setter(entry, key)
            elif isinstance(field, list):
                for j, chunk in enumerate(field):
                    if isinstance(chunk, dict) and isinstance(chunk.get("text"), str):
                        yield (*loc, i, key, j, "text"), chunk["text"], _setter(chunk, "text")


# Where `_texts` finds user text in a body, as paths ("*": each item of a list). The
# document puts `text_schema` on the strings at these paths; a test checks both agree.
TEXT_PATHS: tuple[tuple[str, ...], ...] = (
    ("inputs",),
    ("inputs", "*", "content"),
    ("inputs", "*", "content", "*", "text"),
    ("inputs", "*", "result"),
    ("inputs", "*", "result", "*", "text"),
)


def text_schema(max_chars: int) -> dict[str, Any]:
    """What `apply` refuses in one piece of user text under the default policy (control
    characters rejected), as JSON Schema (the limit is on all the text together; one
    schema cannot sum them, so it bounds each piece)."""
    return {
        "pattern": f"^[^{CONTROL_CHARS}]*$",
        "maxLength": max_chars,
        "description": "User text: no control characters but tab, newline and carriage"
        f" return; at most {max_chars} characters in all the inputs' text together.",
    }


def _setter(container: dict[str, Any], key: str) -> Setter:
    def put(new: str) -> None:
        container[key] = new

    return put
