"""Tenants and their keys: who calls, what they may do, and what they did.

`keys` (API keys, the principal they name), `keyadmin` (their administration),
`tenants`, `auth` (roles and permissions), `audit` (the append-only log),
`usage` (usage reports), `whoami`. The command line is `__main__`.
"""
