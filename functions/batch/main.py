"""The batch function: Pub/Sub messages of conversation starts (shared.batch), and the
sweep of Mistral batch jobs no caller has read to their end (shared.resources.sweep).

Two entry points share the same processing:

- `handle` (HTTP): the push subscription Terraform owns posts each message to
  `POST /gateway/v1/batches/events` (a push body, or a CloudEvent in binary or
  structured mode). 2xx acknowledges; a 503 makes Pub/Sub redeliver.
- `handle_event` (CloudEvent): for an Eventarc trigger on
  `google.cloud.pubsub.topic.v1.messagePublished`. Returning acknowledges;
  raising asks for redelivery.

Each item runs `shared.conversations.turns.run_turn`, the start function's own domain operation.

`POST /gateway/v1/batch/jobs/sweep` (no body) is called by Cloud Scheduler with an OIDC
token, and guarded, as the push route is, by Cloud Run IAM rather than a gateway key. It
answers the run's counts; a 503 when every job it tried failed.
"""

from typing import Any

import flask
import functions_framework

from shared import batch, observability
from shared.http.health import health
from shared.http.web import Context, FunctionApp, json_response, request_id
from shared.resources.sweep import sweep_batch_jobs


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


def sweep(ctx: Context) -> flask.Response:
    """One run of the batch job sweep, bounded by the function's own time budget."""
    container, settings = ctx.container, ctx.container.settings
    report = sweep_batch_jobs(
        container.pool,
        container.mistral,
        container.limiter,
        max_jobs=settings.batch_sweep_max_jobs,
        time_budget_s=settings.batch_time_budget_s,
    )
    return json_response(report.body())


app = FunctionApp(
    "batch",
    {
        "gateway.batches.deliver": deliver,
        "gateway.batch_jobs.sweep": sweep,
        "gateway.health": health,
    },
)


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
