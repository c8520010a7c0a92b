"""The batch function: Pub/Sub messages of conversation starts (shared.batch).

Two entry points share the same processing:

- `handle` (HTTP): the push subscription Terraform owns posts each message to
  `POST /gateway/v1/batches/events` (a push body, or a CloudEvent in binary or
  structured mode). 2xx acknowledges; a 503 makes Pub/Sub redeliver.
- `handle_event` (CloudEvent): for an Eventarc trigger on
  `google.cloud.pubsub.topic.v1.messagePublished`. Returning acknowledges;
  raising asks for redelivery.
"""

from typing import Any

import flask
import functions_framework

from shared import batch
from shared.health import health
from shared.web import Context, FunctionApp, json_response


def deliver(ctx: Context) -> flask.Response:
    delivered = batch.deliver_http(
        ctx.container, ctx.request, request_id=ctx.request_id, access=ctx.access
    )
    return json_response(delivered.body())


app = FunctionApp("batch", {"gateway.batches.deliver": deliver, "gateway.health": health})


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    return app(request)


@functions_framework.cloud_event
def handle_event(cloud_event: Any) -> None:
    # Worker threads need the request itself: the `flask.request` proxy is thread-bound.
    request = flask.request._get_current_object()  # type: ignore[attr-defined]
    batch.deliver_cloud_event(dict(cloud_event.get_attributes()), cloud_event.data, request)
