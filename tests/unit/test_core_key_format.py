"""Gateway API keys: random, high-entropy, recognisable, and hashed."""

from __future__ import annotations

import collections
import hashlib
import math
import random
import string

import pytest

from shared.errors import Unauthorized
from shared.tenancy.keys import KEY_PREFIX, hash_key, new_secret, parse_bearer

URL_SAFE = frozenset(string.ascii_letters + string.digits + "-_")


def test_a_key_is_the_prefix_and_43_url_safe_characters() -> None:
    """`mgw_` makes a leaked key recognisable (secret scanners, the log redactor)."""
    secret = new_secret()
    assert KEY_PREFIX == "mgw_"
    assert secret.startswith("mgw_")
    assert len(secret) == 47
    assert set(secret[4:]) <= URL_SAFE
    assert parse_bearer(f"Bearer {secret}") == secret


def test_keys_are_unique_and_spread_over_the_whole_alphabet() -> None:
    """2000 keys: no repeats, and their characters look uniformly random (256 bits each)."""
    secrets = [new_secret() for _ in range(2000)]
    assert len(set(secrets)) == len(secrets)
    # The 43rd character carries only 4 of 6 bits (256 = 42 * 6 + 4): leave it out.
    counts = collections.Counter(c for s in secrets for c in s[4:46])
    assert set(counts) == URL_SAFE
    expected = 2000 * 42 / 64
    # A chi-square statistic far beyond its 63 degrees of freedom means a biased source.
    chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
    assert chi2 < 150
    # Shannon entropy per character close to the 6 bits of a uniform 64-symbol alphabet.
    total = sum(counts.values())
    entropy = -sum(n / total * math.log2(n / total) for n in counts.values())
    assert entropy > 5.95


def test_keys_do_not_come_from_the_random_module() -> None:
    """Reseeding `random` does not reproduce a key: they come from the OS's CSPRNG."""
    random.seed(1234)
    first = new_secret()
    random.seed(1234)
    assert new_secret() != first


def test_the_stored_hash_is_sha256_of_the_whole_key() -> None:
    """What the database keeps is the SHA-256 digest, never the key."""
    secret = new_secret()
    assert hash_key(secret) == hashlib.sha256(secret.encode()).digest()
    assert secret.encode() not in hash_key(secret)
    assert hash_key(secret) != hash_key(new_secret())


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic bWd3Xzp4",
        "Token " + "mgw_" + "a" * 43,
        "Bearer sk-" + "a" * 45,
        "Bearer mgw_" + "a" * 42,
        "Bearer mgw_" + "a" * 44,
        "Bearer mgw_" + "a" * 43 + " extra",
    ],
)
def test_malformed_authorization_is_unauthorized(header: str | None) -> None:
    """Anything but `Bearer mgw_<43 chars>` is refused before any lookup."""
    with pytest.raises(Unauthorized):
        parse_bearer(header)


def test_the_scheme_is_case_insensitive_and_spaces_are_tolerated() -> None:
    """`bearer` and extra spaces around the key are still a well-formed header."""
    secret = new_secret()
    assert parse_bearer(f"bearer   {secret}  ") == secret
