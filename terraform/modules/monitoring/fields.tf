# The gateway's structured log, field by field: the ONE place Terraform names
# them. Every request writes one JSON line with event = "access" (see
# shared/observability); other events are circuit_transition and
# batch_finished. Every filter and extractor in this module goes through this
# map, and tests/unit/test_terraform.py checks each name against the fields
# the gateway documents, so a renamed field fails a test, not a dashboard.

locals {
  log_field = {
    # every line
    event    = "jsonPayload.event"
    function = "jsonPayload.function"
    # access lines
    route               = "jsonPayload.route"
    method              = "jsonPayload.method"
    status              = "jsonPayload.status"
    latency_ms          = "jsonPayload.latency_ms"
    upstream_latency_ms = "jsonPayload.upstream_latency_ms"
    owner               = "jsonPayload.owner"
    key_prefix          = "jsonPayload.key_prefix"
    agent_id            = "jsonPayload.agent_id"
    model               = "jsonPayload.model"
    conversation_id     = "jsonPayload.conversation_id"
    tokens_in           = "jsonPayload.tokens_in"
    tokens_out          = "jsonPayload.tokens_out"
    pages               = "jsonPayload.pages"
    audio_seconds       = "jsonPayload.audio_seconds"
    rate_limit          = "jsonPayload.rate_limit"
    circuit             = "jsonPayload.circuit"
    idempotent_replay   = "jsonPayload.idempotent_replay"
    error_type          = "jsonPayload.error_type"
    request_id          = "jsonPayload.request_id"
    # circuit_transition lines
    state = "jsonPayload.state"
    # batch_finished lines
    batch_id     = "jsonPayload.batch_id"
    items_total  = "jsonPayload.items_total"
    items_failed = "jsonPayload.items_failed"
  }

  # The gateway's functions only (2nd-gen functions log as Cloud Run revisions).
  gateway_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${var.name}-\""
  access_logs  = "${local.gateway_logs} AND ${local.log_field.event}=\"access\""
}
