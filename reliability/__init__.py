"""Reliability: the fault, soak and attack suites' machinery, and their report.

    python -m reliability            run the suites, then write docs/RELIABILITY.md

Modules: `harness` (the local stack, with every part breakable), `proxy` (a TCP
relay that can slow Mistral's answers), `pressure` (steady background traffic),
`ledger` (what callers were told, and the check that the database agrees),
`soak` (the long run with faults one after another), `figures` (the numbers the
report prints) and `report` (the Markdown). Nothing here runs at import.
"""
