"""`run_script` against real Valkey: the replies of redis-py's `Script`, and its recoveries."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import pytest
import redis

from devstack.servers import EmbeddedValkey
from shared.config import Settings
from shared.limits import ratelimit
from shared.limits.ratelimit import Limit, RateLimiter
from shared.observability import capture_logs
from shared.redis_client import LuaScript, build_redis, run_script

# Every kind of reply a script can give: integers, bulk strings, nested arrays, a status,
# a nil (Lua false), and an error when ARGV[1] says so.
_ECHO = LuaScript(
    """
if ARGV[1] == 'fail' then return redis.error_reply('ERR asked to fail') end
return {tonumber(ARGV[1]), ARGV[2], KEYS[1], {7, 'x', {false}}, redis.status_reply('OK'), false}
"""
)


def _gateway_client(url: str) -> redis.Redis:
    return build_redis(Settings(redis_url=url))


@pytest.mark.parametrize(
    "args", [[1, "a"], [-5, "é ü"], [2**52, ""], [0, "x" * 10_000], [3, b"\x00\xff"]]
)
def test_replies_equal_redis_py_script(redis_client: redis.Redis, args: list[Any]) -> None:
    """run_script answers exactly what redis-py's register_script(...)(keys, args) answers."""
    keys = ["k_" + uuid.uuid4().hex]
    ours = run_script(redis_client, _ECHO, keys, args)
    theirs = redis_client.register_script(_ECHO.text)(keys=keys, args=args)
    assert ours == theirs
    assert ours[1] == (args[1] if isinstance(args[1], bytes) else args[1].encode())


def test_an_error_reply_is_raised_as_redis_py_raises_it(redis_client: redis.Redis) -> None:
    """A script's error reply raises the ResponseError redis-py's Script raises, same message."""
    with pytest.raises(redis.ResponseError) as ours:
        run_script(redis_client, _ECHO, ["k"], ["fail", ""])
    with pytest.raises(redis.ResponseError) as theirs:
        redis_client.register_script(_ECHO.text)(keys=["k"], args=["fail", ""])
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)
    # The connection answered in full, so it is back in the pool and still in step.
    assert run_script(redis_client, _ECHO, ["k"], [4, "next"])[:2] == [4, b"next"]


def test_limiter_replies_equal_the_library_path(redis_client: redis.Redis) -> None:
    """The limiter's own script via run_script and via redis-py's Script: the same decisions."""

    def replies(run: Any) -> list[list[int]]:
        rate, minute, day = (f"gw:test:{n}:{uuid.uuid4().hex}" for n in ("rl", "m", "d"))
        # 10 per minute; 100 tokens of a 150 minute budget each: allowed, then refused.
        args = [6_000_000, 60_000_000, 100, 150, 1000, 30_000, 40_000]
        return [[int(x) for x in run([rate, minute, day], args)] for _ in range(2)]

    script = redis_client.register_script(ratelimit._SCRIPT.text)
    ours = replies(lambda keys, args: run_script(redis_client, ratelimit._SCRIPT, keys, args))
    theirs = replies(lambda keys, args: script(keys=keys, args=args))
    assert ours[0] == theirs[0] == [1, 9, 6_000_000, 0, 0]
    # The refusal's reset is the time left on the clock, microseconds after the first call.
    for refused in (ours[1], theirs[1]):
        assert refused[:2] + refused[3:] == [0, 9, 30_000_000, 2]
        assert 5_000_000 < refused[2] <= 6_000_000


def test_a_flushed_script_is_loaded_again(redis_client: redis.Redis) -> None:
    """After SCRIPT FLUSH (or a Valkey restart) the next check loads the script and decides."""
    limiter = RateLimiter(lambda: redis_client)
    key = "key_" + uuid.uuid4().hex
    assert limiter.check(key, "owner", Limit(5, 60)).remaining == 4
    redis_client.script_flush()
    assert redis_client.script_exists(ratelimit._SCRIPT.sha) == [False]
    with capture_logs() as logs:
        decision = limiter.check(key, "owner", Limit(5, 60))
    assert (decision.outcome, decision.remaining) == ("allowed", 3)
    assert redis_client.script_exists(ratelimit._SCRIPT.sha) == [True]
    assert not [line for line in logs if "rate limiting" in str(line.get("message"))]


def test_a_connection_the_server_closed_is_replaced_not_failed(
    private_valkey: EmbeddedValkey,
) -> None:
    """Valkey dropped the pooled connection (idle timeout, failover): the next check reconnects."""
    client = _gateway_client(private_valkey.url)
    limiter = RateLimiter(lambda: client)
    key = "key_" + uuid.uuid4().hex
    assert limiter.check(key, "owner", Limit(5, 60)).outcome == "allowed"
    killer = redis.Redis.from_url(private_valkey.url)
    assert killer.client_kill_filter(_type="normal", skipme=True) >= 1
    with capture_logs() as logs:
        decision = limiter.check(key, "owner", Limit(5, 60))
    assert (decision.outcome, decision.remaining) == ("allowed", 3)
    assert not [line for line in logs if "rate limiting" in str(line.get("message"))]
    client.close()
    killer.close()


def test_a_timed_out_connection_is_never_reused(private_valkey: EmbeddedValkey) -> None:
    """A reply that came too late is not read as the next call's answer: that connection is gone."""
    client = _gateway_client(private_valkey.url)
    assert run_script(client, _ECHO, ["k"], [1, "warm"])[1] == b"warm"
    assert private_valkey.proc is not None
    os.kill(private_valkey.proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises(redis.TimeoutError):
            run_script(client, _ECHO, ["k"], [1, "late"])
    finally:
        os.kill(private_valkey.proc.pid, signal.SIGCONT)
    assert run_script(client, _ECHO, ["k"], [2, "fresh"])[:2] == [2, b"fresh"]
    client.close()
