"""The redactor's word check only skips patterns that could not have matched."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.observability._redact import _PATTERNS, REDACTED, Redactor

# Words the patterns look for, in several cases, and characters that IGNORECASE folds
# onto ASCII letters (U+017F long s, U+0131 dotless i, U+212A Kelvin sign).
_PIECES = st.sampled_from(
    [
        "password", "PassWord", "passwd", "pwd", "PWD", "bearer ", "Bearer ", "mgw_",
        "mgw_" + "a" * 43, "api_key", "Api-Key", "APIKEY", "secret", "Authorization",
        "credential", "://", "user:pw@", "@", '"x":"', ":", "=", " ", '"', "\\",
        "\u017f", "\u0131", "\u212a", "é", "a", "Z", "0", "-", "_", "\n",
    ]
)  # fmt: skip


def _every_pattern(text: str) -> str:
    for pattern, replacement, _ in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@settings(max_examples=3000)
@given(st.lists(_PIECES, max_size=24).map("".join))
def test_skipping_patterns_by_word_changes_no_output(text: str) -> None:
    """A line comes out exactly as if every pattern had run on it."""
    assert Redactor()(text) == _every_pattern(text)


def test_an_access_line_without_secrets_is_unchanged() -> None:
    """The common case the words make cheap: nothing to redact, nothing changed."""
    line = '{"event": "access", "key_prefix": "mgw_AbCdEfGh", "httpRequest": {"requestUrl": "http://h/v1"}}'
    assert Redactor()(line) == line


def test_secrets_in_any_case_are_still_redacted() -> None:
    """Upper-case words still reach their patterns."""
    out = Redactor()('{"API_KEY": "abc"} PASSWORD=hunter2 Bearer tok.en')
    assert "abc" not in out
    assert "hunter2" not in out
    assert "tok.en" not in out
    assert out.count(REDACTED) == 3
