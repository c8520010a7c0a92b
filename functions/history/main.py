"""The history function: the read path, answered from the gateway's database alone.

It never calls Mistral, so reads stay fast and keep working while Mistral is
down. Each handler parses its query string, calls `shared.reads` with a pooled
connection and the caller's tenant, and answers JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import functions_framework

from shared import reads
from shared.db import Conn
from shared.http.document import serve_openapi
from shared.http.health import health
from shared.http.web import Context, FunctionApp, json_response


def _answer(ctx: Context, read: Callable[[Conn], Any]) -> flask.Response:
    with ctx.container.pool.connection() as conn:
        body = read(conn)
    return json_response(body)


def _conversation_id(ctx: Context) -> str:
    conversation_id = ctx.params["conversation_id"]
    ctx.access.conversation_id = conversation_id
    return conversation_id


def list_conversations(ctx: Context) -> flask.Response:
    query = reads.MistralListQuery.from_args(ctx.request.args)
    return _answer(ctx, lambda conn: reads.conversation_records(conn, ctx.owner, query))


def get_conversation(ctx: Context) -> flask.Response:
    conversation_id = _conversation_id(ctx)
    return _answer(ctx, lambda conn: reads.conversation(conn, ctx.owner, conversation_id))


def get_history(ctx: Context) -> flask.Response:
    conversation_id = _conversation_id(ctx)
    return _answer(ctx, lambda conn: reads.conversation_history(conn, ctx.owner, conversation_id))


def get_messages(ctx: Context) -> flask.Response:
    conversation_id = _conversation_id(ctx)
    return _answer(ctx, lambda conn: reads.conversation_messages(conn, ctx.owner, conversation_id))


def gateway_conversations(ctx: Context) -> flask.Response:
    query = reads.ConversationsQuery.from_args(ctx.request.args)
    return _answer(ctx, lambda conn: reads.conversation_page(conn, ctx.owner, query))


def gateway_entries(ctx: Context) -> flask.Response:
    conversation_id = _conversation_id(ctx)
    query = reads.EntriesQuery.from_args(ctx.request.args)
    return _answer(
        ctx, lambda conn: reads.conversation_entries(conn, ctx.owner, conversation_id, query)
    )


def gateway_batches(ctx: Context) -> flask.Response:
    query = reads.BatchesQuery.from_args(ctx.request.args)
    return _answer(ctx, lambda conn: reads.batch_page(conn, ctx.owner, query))


def gateway_batch(ctx: Context) -> flask.Response:
    batch_id = ctx.params["batch_id"]
    return _answer(ctx, lambda conn: reads.batch(conn, ctx.owner, batch_id))


def gateway_batch_items(ctx: Context) -> flask.Response:
    batch_id = ctx.params["batch_id"]
    query = reads.BatchItemsQuery.from_args(ctx.request.args)
    return _answer(ctx, lambda conn: reads.batch_items(conn, ctx.owner, batch_id, query))


app = FunctionApp(
    "history",
    {
        "conversations.list": list_conversations,
        "conversations.get": get_conversation,
        "conversations.history": get_history,
        "conversations.messages": get_messages,
        "gateway.conversations.list": gateway_conversations,
        "gateway.conversations.entries": gateway_entries,
        "gateway.batches.list": gateway_batches,
        "gateway.batches.get": gateway_batch,
        "gateway.batches.items": gateway_batch_items,
        "gateway.openapi": serve_openapi,
        "gateway.health": health,
    },
)


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    return app(request)
