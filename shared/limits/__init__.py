"""What bounds a call: rate limits and budgets, reservations, the breaker, idempotency.

`ratelimit` (requests and token budgets, in Redis), `estimate` (a turn's or a call's
token reservation), `abandoned` (how far a stream the caller left is read on, for its
usage), `breaker` (the circuit in front of Mistral), `idempotency` (Idempotency-Key
records).
"""
