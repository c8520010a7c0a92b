"""What bounds a call: rate limits and budgets, reservations, the breaker, idempotency.

`ratelimit` (requests and token budgets, in Redis), `estimate` (a turn's token
reservation), `breaker` (the circuit in front of Mistral), `idempotency`
(Idempotency-Key records).
"""
