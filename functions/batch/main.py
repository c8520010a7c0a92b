"""The batch function: Pub/Sub messages of conversation starts (shared.batch).

Two entry points share the same processing:

- `handle` (HTTP): the push subscription Terraform owns posts each message to
  `POST /gateway/v1/batches/events` (a push body, or a CloudEvent in binary or
  structured mode). 2xx acknowledges; a 503 makes Pub/Sub redeliver.
- `handle_event` (CloudEvent): for an Eventarc trigger on
  `google.cloud.pubsub.topic.v1.messagePublished`. Returning acknowledges;
  raising asks for redelivery.

Each item runs `shared.conversations.turns.run_turn`, the start function's own domain operation.
"""

from typing import Any

import flask
import functions_framework

from shared import batch, observability
from shared.http.health import health
from shared.http.web import Context, FunctionApp, json_response, request_id


def deliver(ctx: Context) -> flask.Response:
    """Parse (the delivery's headers and bounded body), deliver, map."""
    raw = ctx.request.stream.read(batch.MAX_DELIVERY_BYTES + 1)
    delivered = batch.deliver_http(
        ctx.container,
        ctx.request.headers,
        raw,
        request_id=ctx.request_id,
        access=ctx.access,
    )
    return json_response(delivered.body())


app = FunctionApp("batch", {"gateway.batches.deliver": deliver, "gateway.health": health})


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    return app(request)


@functions_framework.cloud_event
def handle_event(cloud_event: Any) -> None:
    event_request_id = request_id("")
    # The log context (trace, request id) is the HTTP request's that carried the event.
    observability.bind_http_request(flask.request, request_id=event_request_id, function="batch")
    try:
        batch.deliver_cloud_event(
            dict(cloud_event.get_attributes()), cloud_event.data, request_id=event_request_id
        )
    finally:
        observability.clear_request()
