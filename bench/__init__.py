"""The benchmark suite (`make bench`, issue 11): not part of `make test`, never a timed test.

`python -m bench` starts the local stack (embedded PostgreSQL and Valkey, the
Mistral stand-in, every function), runs each scenario against it with a load
generator in its own process on loopback (`wrk` for HTTP request/response
load, an aiohttp client for event streams), measures every figure that has a
floor in the same run as that floor (the same requests sent straight to the
stand-in), and writes `bench/RESULTS.md`.
"""
