"""The read path: conversations, entries and batches, from the gateway's own database.

Nothing here calls Mistral, so reads stay fast and cheap and keep answering
while Mistral is down. Each read takes a connection and the caller's tenant
(every query is scoped to it: another tenant's object is a 404, exactly like a
missing one) and returns a JSON-ready body:

    Mistral's shapes (wire contract 6.3, 6.4), for the unchanged SDK
        conversation_records   GET /v1/conversations          a JSON array, newest first
        conversation           GET /v1/conversations/{id}
        conversation_history   GET /v1/conversations/{id}/history
        conversation_messages  GET /v1/conversations/{id}/messages
    The gateway's own, `{"object": "list", "data": [...], "next_cursor": ...}` pages
        conversation_page      GET /gateway/v1/conversations
        conversation_entries   GET /gateway/v1/conversations/{id}/entries
        batch_page             GET /gateway/v1/batches
        batch                  GET /gateway/v1/batches/{id}
        batch_items            GET /gateway/v1/batches/{id}/items

The `*Query` classes parse a route's query string (422 naming every bad field).
"""

from shared.reads._batches import batch, batch_items, batch_page
from shared.reads._conversations import (
    conversation,
    conversation_entries,
    conversation_history,
    conversation_messages,
    conversation_page,
    conversation_records,
)
from shared.reads._query import (
    MAX_PAGE_SIZE,
    BatchesQuery,
    BatchItemsQuery,
    ConversationsQuery,
    EntriesQuery,
    MistralListQuery,
    QueryArgs,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "BatchItemsQuery",
    "BatchesQuery",
    "ConversationsQuery",
    "EntriesQuery",
    "MistralListQuery",
    "QueryArgs",
    "batch",
    "batch_items",
    "batch_page",
    "conversation",
    "conversation_entries",
    "conversation_history",
    "conversation_messages",
    "conversation_page",
    "conversation_records",
]
