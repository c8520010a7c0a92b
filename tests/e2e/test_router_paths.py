"""The local router (the load balancer's stand-in) forwards a path as it came, encoded."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from devstack.stack import StackInfo
from tests.support import error_code


# A path segment ending in a newline matches its route (a regex `$` matches before a final
# newline); the others are the router's own 404.
@pytest.mark.parametrize("asset", ["A%0A", "a%0Db", "x%7Fy", "%C2%84"])
def test_a_path_with_an_encoded_control_character_is_404(stack: StackInfo, asset: str) -> None:
    """A console asset named with an encoded control character is 404 (the function's or the
    router's), not a 502 from a request line the router could not write (found by fuzzing)."""
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{stack.url}/gateway/v1/console/{asset}", timeout=10)  # noqa: S310 - loopback
    assert raised.value.code == 404
    assert raised.value.headers["X-Request-Id"]
    assert error_code(json.loads(raised.value.read())) in ("not_found", "route_not_found")
