# One dashboard: traffic, errors, latency, upstream, tokens, limits, breaker, batches.

locals {
  user_metric = { for k, m in merge(
    {
      requests            = google_logging_metric.requests
      latency             = google_logging_metric.latency
      upstream_latency    = google_logging_metric.upstream_latency
      rate_limited        = google_logging_metric.rate_limited
      circuit_transitions = google_logging_metric.circuit_transitions
      batch_failures      = google_logging_metric.batch_failures
    },
    google_logging_metric.tokens,
  ) : k => "metric.type=\"${local.metric}/${m.name}\" AND ${local.on_gateway}" }

  charts = [
    { title = "Requests/s by function", filter = local.user_metric.requests, aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.label.function"] },
    { title = "5xx/s by function and error type", filter = "${local.user_metric.requests} AND metric.label.status=starts_with(\"5\")", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.label.function", "metric.label.error_type"] },
    { title = "4xx/s by error type", filter = "${local.user_metric.requests} AND metric.label.status=starts_with(\"4\")", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.label.error_type"] },
    { title = "p95 latency (ms) by function", filter = local.user_metric.latency, aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", by = ["metric.label.function"] },
    { title = "p50 latency (ms) by function", filter = local.user_metric.latency, aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_50", by = ["metric.label.function"] },
    { title = "Mistral p95 latency (ms) by model", filter = local.user_metric.upstream_latency, aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", by = ["metric.label.model"] },
    { title = "Prompt tokens/s by model", filter = local.user_metric.tokens_in, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", by = ["metric.label.model"] },
    { title = "Completion tokens/s by model", filter = local.user_metric.tokens_out, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", by = ["metric.label.model"] },
    { title = "Rate-limited requests/s", filter = local.user_metric.rate_limited, aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.label.function"] },
    { title = "Circuit transitions by state", filter = local.user_metric.circuit_transitions, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", by = ["metric.label.state"] },
    { title = "Batches with failed items", filter = local.user_metric.batch_failures, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", by = [] },
    { title = "Dead-lettered batch messages", filter = "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${var.push_subscription_name}\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", by = [] },
  ]
}

resource "google_monitoring_dashboard" "gateway" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name} gateway"
    mosaicLayout = {
      columns = 12
      tiles = [for i, chart in local.charts : {
        xPos   = (i % 2) * 6
        yPos   = floor(i / 2) * 4
        width  = 6
        height = 4
        widget = {
          title = chart.title
          xyChart = {
            dataSets = [{
              plotType = "LINE"
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter = chart.filter
                  aggregation = {
                    alignmentPeriod    = "60s"
                    perSeriesAligner   = chart.aligner
                    crossSeriesReducer = chart.reducer
                    groupByFields      = chart.by
                  }
                }
              }
            }]
          }
        }
      }]
    }
  })
}
