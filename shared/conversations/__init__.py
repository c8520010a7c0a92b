"""Conversations: a turn, from request to stored entries, and what keeps them stored.

`turns` runs a turn (start, append, restart); `policy` is the input policy it
applies; `sse` reads and writes Mistral's event streams; `store` writes
conversations, entries and usage; `unstored` keeps what Mistral answered but the
gateway failed to write, to store it later; `archive_delete` archives and deletes.
"""
