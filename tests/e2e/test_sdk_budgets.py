"""Token budgets under concurrency (issue 16, finding 4), through the unchanged SDK.

Concurrent turns are admitted against their reservations; the reservation must not
undercount what a turn costs, or they overspend together (the held-out run: 5 of 50
admitted under a budget of 1,000, 1,550 tokens spent). The README's bound: concurrent
admitted turns spend at most the budget plus one turn.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from mistralai.client import Mistral
from mistralai.client.errors import SDKError

from devstack.stack import StackInfo
from shared.container import Container
from shared.tenancy.keys import create_key

MODEL = "mistral-small-latest"
OWNER = "e2e-budget-tenant"
BUDGET = 1_000
# Word-dense input: 300 one-letter words are 600 characters, which characters / 4 took
# for 150 tokens; the stand-in counts 300 (one per word), as tokenisers do.
INPUTS = " ".join(["a"] * 300)
MAX_TOKENS = 10


def test_concurrent_streaming_starts_spend_at_most_the_budget_and_one_turn(
    stack: StackInfo, stack_container: Container
) -> None:
    """50 concurrent streaming starts over 2 keys of a tenant with a day budget of 1,000."""
    with stack_container.pool.transaction() as conn:
        keys = [
            create_key(
                conn,
                owner_id=OWNER,
                name=f"budget key {i}",
                role="user",
                limits={"token_budget_per_day": BUDGET},
            )
            for i in range(2)
        ]

    def start(i: int) -> str:
        sdk = Mistral(api_key=keys[i % 2].secret, server_url=stack.url)
        try:
            events = list(
                sdk.beta.conversations.start_stream(
                    model=MODEL, inputs=INPUTS, completion_args={"max_tokens": MAX_TOKENS}
                )
            )
        except SDKError as exc:
            return f"refused {exc.status_code}"
        return type(events[-1].data).__name__

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(start, range(50)))
    with stack_container.pool.connection() as conn:
        turns = conn.all(
            "SELECT prompt_tokens + completion_tokens AS tokens FROM usage_events"
            " WHERE owner_id = :owner",
            owner=OWNER,
        )
    spent = sum(t["tokens"] for t in turns)
    one_turn = max(t["tokens"] for t in turns)
    assert set(outcomes) == {"ResponseDoneEvent", "refused 429"}, outcomes
    assert outcomes.count("ResponseDoneEvent") == len(turns)
    assert one_turn == 300 + MAX_TOKENS
    assert spent <= BUDGET + one_turn, turns
