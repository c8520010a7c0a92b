"""A batch job priced before it runs: its create reserves what its lines may cost (read
from its input files in Mistral, within a cap), is refused when that does not fit the
tenant's token budget, and the reservation is settled against the job's real tokens
when the job is metered.

The admin and batch functions in process, the stand-in over real HTTP (a chat line's
usage there: a prompt token per word, `max_tokens` completion tokens), the real database
and Valkey.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from devstack.standin import StandIn
from shared.container import Container
from shared.limits.ratelimit import Budget, Limit
from shared.resources import batch_job_estimate, check_batch_job
from tests.support import bearer, client, create_batch_job, error_code, make_key, upload_batch_file

A = "tenant-a"
MODEL = "mistral-small-latest"
NO_LIMIT = {"rate_limit_requests": 100_000, "rate_limit_window": 60}
# One chat line: reserved 8 prompt tokens ("hello there" counted high, with its entry)
# plus its max_tokens, 10: 18. Mistral (the stand-in) spends 2 + 10 = 12.
BODY = {"max_tokens": 10, "messages": [{"role": "user", "content": "hello there"}]}
LINE = json.dumps({"custom_id": "a", "body": BODY}).encode() + b"\n"
PER_LINE, SPENT_PER_LINE = 18, 12
PROBE = Limit(100_000, 60)
BODY_ENDPOINT = "/v1/chat/completions"


def _left(gateway: Container, budget: int) -> int:
    """Tokens left of a day budget of `budget`: the largest reservation it still takes
    (found by halving; each probe that fits is given back)."""
    low, high = 0, budget
    while low < high:
        mid = (low + high + 1) // 2
        decision = gateway.limiter.check("probe", A, PROBE, Budget(per_day=budget), mid)
        if decision.allowed:
            gateway.limiter.settle(decision, 0)
            low = mid
        else:
            high = mid - 1
    return low


def test_a_create_reserves_what_its_lines_may_cost(gateway: Container) -> None:
    """Three lines in a file and one inline: 4 x 18 tokens reserved of the day's budget."""
    key = make_key(gateway, "user", A, token_budget_per_day=1000, **NO_LIMIT)
    file_id = upload_batch_file(key, LINE * 3)
    created = create_batch_job(key, file_id, requests=[{"custom_id": "i", "body": BODY}])
    assert created.status_code == 200, created.get_data()
    assert _left(gateway, 1000) == 1000 - 4 * PER_LINE


def test_a_create_whose_estimate_does_not_fit_is_refused_before_mistral(
    gateway: Container, standin: StandIn
) -> None:
    """A budget one token short of the job's estimate: 429 `token_budget_exceeded`, Mistral
    never asked to create, nothing reserved; exactly the estimate left: it is made."""
    short = make_key(gateway, "user", A, token_budget_per_day=3 * PER_LINE - 1, **NO_LIMIT)
    file_id = upload_batch_file(short, LINE * 3)
    calls = standin.calls().get("batch.jobs.create", 0)
    refused = create_batch_job(short, file_id)
    assert refused.status_code == 429, refused.get_data()
    assert error_code(refused.get_json()) == "token_budget_exceeded"
    assert standin.calls().get("batch.jobs.create", 0) == calls
    assert _left(gateway, 3 * PER_LINE - 1) == 3 * PER_LINE - 1
    exact = make_key(gateway, "user", A, token_budget_per_day=3 * PER_LINE, **NO_LIMIT)
    made = create_batch_job(exact, file_id)
    assert made.status_code == 200, made.get_data()


def test_the_reservation_is_settled_to_the_real_tokens_when_the_job_is_metered(
    gateway: Container,
) -> None:
    """54 reserved, 36 spent: once the sweep meters the job the day's bucket holds 36 (the
    difference given back), and one usage event of 36 tokens is recorded."""
    key = make_key(gateway, "user", A, token_budget_per_day=1000, **NO_LIMIT)
    created = create_batch_job(key, upload_batch_file(key, LINE * 3))
    assert created.status_code == 200, created.get_data()
    assert _left(gateway, 1000) == 1000 - 3 * PER_LINE
    for _ in range(2):  # RUNNING, then ended
        assert client("batch").post("/gateway/v1/batch/jobs/sweep").status_code == 200
    assert _left(gateway, 1000) == 1000 - 3 * SPENT_PER_LINE
    with gateway.pool.connection() as conn:
        spent = conn.all(
            "SELECT prompt_tokens + completion_tokens AS n FROM usage_events"
            " WHERE operation = 'batch.jobs'"
        )
    assert spent == [{"n": 3 * SPENT_PER_LINE}]


def test_a_repeat_under_its_idempotency_key_reserves_nothing_more(
    gateway: Container, standin: StandIn
) -> None:
    """A create repeated under its Idempotency-Key gets the first job and spends none of
    the budget (what it reserved to be priced is given back); another body under the key
    is 422 and gives its reservation back too."""
    key = make_key(gateway, "user", A, token_budget_per_day=1000, **NO_LIMIT)
    file_id = upload_batch_file(key, LINE * 2)
    once = {"Idempotency-Key": "job-once"}
    job = {"input_files": [file_id], "endpoint": BODY_ENDPOINT, "model": MODEL}
    first = client("admin").post("/v1/batch/jobs", json=job, headers={**bearer(key), **once})
    assert first.status_code == 200, first.get_data()
    left = _left(gateway, 1000)
    assert left == 1000 - 2 * PER_LINE
    again = client("admin").post("/v1/batch/jobs", json=job, headers={**bearer(key), **once})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    other = {**job, "metadata": {"another": "body"}}
    refused = client("admin").post("/v1/batch/jobs", json=other, headers={**bearer(key), **once})
    assert refused.status_code == 422
    assert _left(gateway, 1000) == left
    assert standin.calls()["batch.jobs.create"] == 1


def test_a_key_over_its_rate_is_refused_before_its_files_are_read(
    gateway: Container, standin: StandIn
) -> None:
    """With two requests a minute (an upload and a create), a second create is 429
    `rate_limited` and Mistral is not asked for its input file: the rate is checked
    before the job is priced."""
    key = make_key(
        gateway, "user", A, token_budget_per_day=1000, rate_limit_requests=2, rate_limit_window=60
    )
    file_id = upload_batch_file(key, LINE)
    assert create_batch_job(key, file_id).status_code == 200
    downloads = standin.calls()["files.download"]
    assert downloads >= 1
    refused = create_batch_job(key, file_id)
    assert refused.status_code == 429
    assert error_code(refused.get_json()) == "rate_limited"
    assert "Retry-After" in refused.headers
    assert standin.calls()["files.download"] == downloads
    assert standin.calls()["batch.jobs.create"] == 1


def test_a_failed_create_gives_its_reservation_back(gateway: Container, standin: StandIn) -> None:
    """Mistral refuses the create (400): the whole estimate is left."""
    key = make_key(gateway, "user", A, token_budget_per_day=1000, **NO_LIMIT)
    file_id = upload_batch_file(key, LINE * 3)
    standin.inject("status=400", operation="batch.jobs.create")
    refused = create_batch_job(key, file_id)
    assert refused.status_code == 400, refused.get_data()
    assert _left(gateway, 1000) == 1000


def test_spend_over_the_reservation_is_charged_now_and_under_it_given_back_to_its_day(
    gateway: Container,
) -> None:
    """settle_reservation: 30 spent of 20 reserved leaves 30 counted; 5 spent of 20 leaves
    5; a reservation whose buckets expired gets nothing back and makes no bucket."""
    budget = Budget(per_day=1000)
    over = gateway.limiter.check("k", A, PROBE, budget, 20).reservation()
    assert over is not None
    gateway.limiter.settle_reservation(A, over, 30)
    assert _left(gateway, 1000) == 1000 - 30
    under = gateway.limiter.check("k", A, PROBE, budget, 20).reservation()
    assert under is not None
    gateway.limiter.settle_reservation(A, under, 5)
    assert _left(gateway, 1000) == 1000 - 35
    gone = dataclasses.replace(under, minute_key="gw:tok:m:x:1", day_key="gw:tok:d:x:1")
    gateway.limiter.settle_reservation(A, gone, 0)
    assert gateway.redis.exists("gw:tok:d:x:1") == 0
    assert _left(gateway, 1000) == 1000 - 35


@pytest.mark.parametrize("lines", [40, 41])
def test_past_the_read_cap_the_estimate_is_scaled_to_the_files_size(
    gateway: Container, lines: int
) -> None:
    """A cap of ten lines' bytes (and a half) over a file of 40 or 41 equal lines: the
    price is what reading every line gives, from ten lines read."""
    key = make_key(gateway, "user", A, **NO_LIMIT)
    file_id = upload_batch_file(key, LINE * lines)
    settings = dataclasses.replace(
        gateway.settings, batch_estimate_max_bytes=len(LINE) * 10 + len(LINE) // 2
    )
    job = check_batch_job(gateway.pool, A, {"input_files": [file_id], "endpoint": BODY_ENDPOINT})
    assert batch_job_estimate(gateway.mistral, settings, job) == lines * PER_LINE


def test_a_line_longer_than_the_cap_prices_the_file_at_a_token_per_four_bytes(
    gateway: Container,
) -> None:
    """No whole line under the cap: the file's bytes / 4, plus one completion reserve."""
    key = make_key(gateway, "user", A, **NO_LIMIT)
    data = LINE * 4
    file_id = upload_batch_file(key, data)
    settings = dataclasses.replace(gateway.settings, batch_estimate_max_bytes=len(LINE) - 5)
    job = check_batch_job(gateway.pool, A, {"input_files": [file_id], "endpoint": BODY_ENDPOINT})
    expected = -(-len(data) // 4) + settings.token_reserve_completion
    assert batch_job_estimate(gateway.mistral, settings, job) == expected


def test_an_agent_jobs_lines_are_priced_with_the_agent(gateway: Container) -> None:
    """A job with an agent_id: each line adds the agent's instructions and takes its
    max_tokens when the line sets none."""
    key = make_key(gateway, "admin", A, **NO_LIMIT)
    agent = client("admin").post(
        "/v1/agents",
        json={
            "model": MODEL,
            "name": "pricer",
            "instructions": "one two three four",
            "completion_args": {"max_tokens": 7},
        },
        headers=bearer(key),
    )
    assert agent.status_code == 200, agent.get_data()
    line = {"custom_id": "a", "body": {"messages": BODY["messages"]}}
    file_id = upload_batch_file(key, json.dumps(line).encode() + b"\n")
    body = {"input_files": [file_id], "endpoint": BODY_ENDPOINT, "agent_id": agent.get_json()["id"]}
    job = check_batch_job(gateway.pool, A, body)
    # 8 (the message) + 5 (the instructions: 18 characters, counted high) + 7 (the
    # agent's max_tokens)
    assert batch_job_estimate(gateway.mistral, gateway.settings, job) == 8 + 5 + 7


def test_a_job_is_priced_against_the_day_budget_only(gateway: Container) -> None:
    """A minute budget of 10 does not refuse a job priced 54 (it runs for hours, not in the
    minute) and takes none of its reservation; the day budget takes all 54."""
    key = make_key(
        gateway, "user", A, token_budget_per_minute=10, token_budget_per_day=1000, **NO_LIMIT
    )
    created = create_batch_job(key, upload_batch_file(key, LINE * 3))
    assert created.status_code == 200, created.get_data()
    assert _left(gateway, 1000) == 1000 - 3 * PER_LINE
    assert gateway.limiter.check("probe", A, PROBE, Budget(per_minute=10), 10).allowed
