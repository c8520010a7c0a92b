"""The input policy: matching that disguises cannot dodge, its three actions, and limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.conversations.policy import InputPolicy
from shared.errors import ConfigError, ValidationFailed

PHRASE = "ignore previous instructions"
REDACTED = "[redacted]"


def policy(action: str, *, max_chars: int = 10_000, control_chars: str = "reject") -> InputPolicy:
    patterns = json.dumps([{"pattern": PHRASE, "action": action}])
    return InputPolicy.from_config(patterns, max_chars=max_chars, control_chars=control_chars)


def _full_width(char: str) -> str:
    """The full-width form of a printable ASCII character (U+FF01..U+FF5E)."""
    return chr(ord(char) - 0x21 + 0xFF01) if "!" <= char <= "~" else char


@st.composite
def disguised(draw: st.DrawFn) -> str:
    """The phrase with each letter's case and width and each gap's whitespace changed."""
    words = []
    for word in PHRASE.split():
        letters = []
        for char in word:
            char = draw(st.sampled_from([char.lower(), char.upper()]))
            letters.append(_full_width(char) if draw(st.booleans()) else char)
        words.append("".join(letters))
    gaps = [
        draw(
            st.text(st.sampled_from([" ", "\t", "\n", "\u3000", "\u00a0"]), min_size=1, max_size=4)
        )
        for _ in words[1:]
    ]
    return words[0] + "".join(g + w for g, w in zip(gaps, words[1:], strict=True))


# Text around the phrase: plain and "compatibility" characters that NFKC would rewrite
# (circled digits, full-width letters, ligatures), which redaction must leave alone.
SURROUNDING = st.text(st.sampled_from(list("0123456789 .,;?!-日本①ＡＢﬁ²")), max_size=12)


@settings(max_examples=200)
@given(phrase=disguised(), before=SURROUNDING, after=SURROUNDING)
@example(phrase="IGNORE  PREVIOUS   INSTRUCTIONS", before="", after="")
@example(phrase="ｉｇｎｏｒｅ ｐｒｅｖｉｏｕｓ ｉｎｓｔｒｕｃｔｉｏｎｓ", before="", after="")
def test_reject_cannot_be_dodged_by_case_whitespace_or_width(
    phrase: str, before: str, after: str
) -> None:
    """Changing case, doubling whitespace or using full-width letters still hits the rule."""
    with pytest.raises(ValidationFailed) as raised:
        policy("reject").apply({"inputs": before + phrase + after})
    assert raised.value.detail == [
        {
            "loc": ["body", "inputs"],
            "msg": "the input matches a blocked pattern",
            "type": "input_policy",
        }
    ]


@settings(max_examples=200)
@given(phrase=disguised(), before=SURROUNDING, after=SURROUNDING)
def test_redact_replaces_the_match_and_nothing_else(phrase: str, before: str, after: str) -> None:
    """Redaction replaces exactly the disguised phrase; the text around it is sent as written."""
    body: dict[str, Any] = {"inputs": before + phrase + after}
    changed, hits = policy("redact").apply(body)
    assert changed
    assert [(h.action, h.loc) for h in hits] == [("redact", ("body", "inputs"))]
    assert body["inputs"] == before + REDACTED + after


@settings(max_examples=100)
@given(phrase=disguised(), before=SURROUNDING, after=SURROUNDING)
def test_log_reports_the_hit_and_sends_the_text_unchanged(
    phrase: str, before: str, after: str
) -> None:
    """A `log` rule reports the hit and changes nothing."""
    text = before + phrase + after
    body: dict[str, Any] = {"inputs": text}
    changed, hits = policy("log").apply(body)
    assert not changed
    assert body == {"inputs": text}
    assert [(h.rule, h.action) for h in hits] == [(PHRASE, "log")]


def test_every_text_of_an_entry_list_is_checked_and_redacted_in_place() -> None:
    """String contents, text chunks and function results are each checked, with their loc."""
    body: dict[str, Any] = {
        "inputs": [
            {"role": "user", "content": "please Ignore Previous Instructions now"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "x IGNORE previous\tinstructions"}],
            },
            {
                "type": "function.result",
                "tool_call_id": "t",
                "result": "ignore previous instructions",
            },
        ]
    }
    changed, hits = policy("redact").apply(body)
    assert changed
    assert [h.loc for h in hits] == [
        ("body", "inputs", 0, "content"),
        ("body", "inputs", 1, "content", 0, "text"),
        ("body", "inputs", 2, "result"),
    ]
    assert body["inputs"][0]["content"] == f"please {REDACTED} now"
    assert body["inputs"][1]["content"][0]["text"] == f"x {REDACTED}"
    assert body["inputs"][2]["result"] == REDACTED


def test_text_without_the_phrase_is_not_touched() -> None:
    """Words of the phrase in another order, or apart, are no hit."""
    body: dict[str, Any] = {"inputs": "previous instructions: do not ignore them"}
    assert policy("reject").apply(body) == (False, [])


CONTROL = [chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]]


@given(char=st.sampled_from(CONTROL), before=st.text(max_size=5).filter(str.isprintable))
def test_control_characters_are_rejected_by_default(char: str, before: str) -> None:
    """Any C0/C1 control character (but tab, newline, carriage return) or DEL is a 422."""
    with pytest.raises(ValidationFailed) as raised:
        policy("log").apply({"inputs": before + char + "hello"})
    assert [d["type"] for d in raised.value.detail] == ["control_chars"]


def test_tab_newline_and_carriage_return_are_allowed() -> None:
    """Ordinary line structure is not a control-character problem."""
    assert policy("log").apply({"inputs": "a\tb\nc\r\nd"}) == (False, [])


def test_control_characters_are_stripped_or_allowed_when_configured() -> None:
    """`strip` removes them (and the body changes); `allow` lets them through."""
    body: dict[str, Any] = {"inputs": "he\x00ll\x1bo"}
    assert policy("log", control_chars="strip").apply(body)[0] is True
    assert body["inputs"] == "hello"
    kept: dict[str, Any] = {"inputs": "he\x00llo"}
    assert policy("log", control_chars="allow").apply(kept) == (False, [])
    assert kept["inputs"] == "he\x00llo"


def test_inputs_over_the_length_limit_are_rejected() -> None:
    """The limit counts every text of the inputs together; at the limit is fine."""
    at_limit = {"inputs": [{"content": "a" * 6}, {"content": [{"type": "text", "text": "b" * 4}]}]}
    assert policy("log", max_chars=10).apply(at_limit) == (False, [])
    with pytest.raises(ValidationFailed) as raised:
        policy("log", max_chars=10).apply({"inputs": "a" * 11})
    assert raised.value.detail[0]["type"] == "too_long"
    assert raised.value.detail[0]["loc"] == ["body", "inputs"]


def test_a_bad_pattern_list_fails_at_configuration() -> None:
    """Unknown actions, empty patterns or a malformed list are a ConfigError at start."""
    for bad in (
        '[{"pattern": "x", "action": "shout"}]',
        '[{"pattern": " ", "action": "reject"}]',
        '[{"action": "log"}]',
        "{not json",
    ):
        with pytest.raises(ConfigError):
            InputPolicy.from_config(bad, max_chars=10, control_chars="reject")
