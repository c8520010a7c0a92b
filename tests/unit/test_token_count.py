"""The reservation's piece count (`estimate._pieces`) equals the regex's it replaces."""

from __future__ import annotations

import random

from shared.limits.estimate import _PIECE, _pieces

_CASES = [
    "",
    "a",
    ".",
    " ",
    "Hello, gateway: a benchmark request.",
    "a.b,c;d",
    "  leading and trailing  ",
    "tabs\tnew\nlines\r\nform\x0cfeed\x0bvertical\x1cfile\x1fsep",
    "x" * 5000,
    "{" * 300 + "}" * 300,
    "snake_case and CamelCase42 with 3.14 and -7",
    "café naïve 東京 emoji 🙂 nbsp\u00a0here\u3000there",
]


def test_the_count_equals_the_regexs_on_chosen_text() -> None:
    """Punctuation, every kind of ASCII whitespace, long runs, non-ASCII text: the same count."""
    for text in _CASES:
        assert _pieces(text) == len(_PIECE.findall(text)), repr(text)


def test_the_count_equals_the_regexs_on_random_ascii() -> None:
    """Random strings over all 128 ASCII characters count as the regex counts them."""
    rnd = random.Random(19)
    for _ in range(5000):
        text = "".join(chr(rnd.randrange(128)) for _ in range(rnd.randrange(60)))
        assert _pieces(text) == len(_PIECE.findall(text)), repr(text)


def test_the_count_equals_the_regexs_on_mixed_text() -> None:
    """Strings mixing ASCII with non-ASCII letters and spaces take the regex's count."""
    rnd = random.Random(22)
    alphabet = [chr(c) for c in range(128)] + list("éß東🙂\u00a0\u2003\u3000\u0085")
    for _ in range(2000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(40)))
        assert _pieces(text) == len(_PIECE.findall(text)), repr(text)
