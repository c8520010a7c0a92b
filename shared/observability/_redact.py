"""Scrubbing secrets out of log text, the last step before a line is written.

The patterns run on the finished JSON line, so they reach the message, every
json field, tracebacks and the request URL alike. Values the process knows to
be secret (the Mistral key, the Redis and database passwords) are registered
once at configure time and replaced wherever they appear.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable

__all__ = ["REDACTED", "Redactor"]

REDACTED = "[REDACTED]"

# Shorter registered values are not matched literally: a six-letter password that is
# also a common word would blank that word out of every line. The patterns still apply.
_MIN_SECRET_LENGTH = 8

# Each pattern with the words one of which any text it matches must hold, lower-cased.
# The words let a line skip the patterns it cannot match: most lines match none, and
# running every pattern on every line was a visible share of a start request's CPU
# (bench/RESULTS.md, note 2). The patterns themselves decide what is redacted.
_PATTERNS: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    # A gateway key: `mgw_` and 43 URL-safe characters (shared.tenancy.keys).
    (re.compile(r"mgw_[A-Za-z0-9_-]{43}[A-Za-z0-9_-]*"), "mgw_" + REDACTED, ("mgw_",)),
    # An Authorization header value.
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\g<1>" + REDACTED, ("bearer",)),
    # Credentials in a URL or DSN: scheme://user:password@host.
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/?#@\"'\\]*:)[^\s/?#@\"'\\]+@"),
        r"\g<1>" + REDACTED + "@",
        ("@",),
    ),
    # password=..., password: ... in free text, connection strings and query strings.
    (
        re.compile(r"(?i)\b(password|passwd|pwd)(\s*[=:]\s*)[^\s&;,\"'}\\]+"),
        r"\g<1>\g<2>" + REDACTED,
        ("pass", "pwd"),
    ),
    # The string value of a JSON key named like a secret: {"api_key": "..."}.
    (
        re.compile(
            r'(?i)("[^"\\]*(?:password|passwd|secret|api[_-]?key|authorization|credential)'
            r'[^"\\]*"\s*:\s*")(?:[^"\\]|\\.)*"'
        ),
        r"\g<1>" + REDACTED + '"',
        ("pass", "secret", "apikey", "api_key", "api-key", "authorization", "credential"),
    ),
)


class Redactor:
    """Replaces secret-looking text and registered secret values with `[REDACTED]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._literal: re.Pattern[str] | None = None
        self.register(*secrets)

    def register(self, *secrets: str) -> None:
        """Add values to scrub wherever they appear (empty and short ones are ignored)."""
        with self._lock:
            known = self._secrets | {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}
            if known == self._secrets:
                return
            # The line is JSON: a value with quotes or backslashes appears escaped there.
            forms = {form for s in known for form in (s, json.dumps(s, ensure_ascii=False)[1:-1])}
            alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
            # Swapped in one assignment: concurrent callers see the old or the new pattern.
            self._literal = re.compile(alternatives)
            self._secrets = known

    def __call__(self, text: str) -> str:
        literal = self._literal
        if literal is not None:
            text = literal.sub(REDACTED, text)
        # Lower-casing finds every case-insensitive match of the ASCII words in ASCII
        # text; other text (re's IGNORECASE also folds e.g. U+017F to "s") runs every pattern.
        folded = text.lower() if text.isascii() else None
        for pattern, replacement, words in _PATTERNS:
            if folded is not None and not any(word in folded for word in words):
                continue
            redacted = pattern.sub(replacement, text)
            if redacted != text:
                text = redacted
                folded = text.lower() if text.isascii() else None
        return text
