# One dashboard: traffic, errors, latency, upstream, tokens, limits, breaker, batches.

locals {
  # Tokens are distributions (one value per request): a filter-based chart can
  # only show their percentiles, not tokens per second. PromQL reads the
  # distribution's running sum (`_sum`) as a counter, whose rate is tokens/s.
  # Cloud Monitoring's PromQL name for logging.googleapis.com/user/<name>:
  # the first "/" becomes ":", every other non-alphanumeric character "_".
  promql_metric = { for k, m in google_logging_metric.tokens : k => "logging_googleapis_com:user_${replace(m.name, "/[^a-zA-Z0-9_]/", "_")}" }

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
    { title = "Requests/s by function", filter = local.user_metric.requests, aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.label.function"], promql = null },
    { title = "5xx/s by function and error type", filter = "${local.user_metric.requests} AND metric.label.status=starts_with(\"5\")", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.label.function", "metric.label.error_type"], promql = null },
    { title = "4xx/s by error type", filter = "${local.user_metric.requests} AND metric.label.status=starts_with(\"4\")", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.label.error_type"], promql = null },
    { title = "p95 latency (ms) by function", filter = local.user_metric.latency, aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", by = ["metric.label.function"], promql = null },
    { title = "p50 latency (ms) by function", filter = local.user_metric.latency, aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_50", by = ["metric.label.function"], promql = null },
    { title = "Mistral p95 latency (ms) by model", filter = local.user_metric.upstream_latency, aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", by = ["metric.label.model"], promql = null },
    { title = "Prompt tokens/s by model", filter = null, aligner = null, reducer = null, by = null, promql = "sum by (model) (rate(${local.promql_metric.tokens_in}_sum{monitored_resource=\"cloud_run_revision\"}[5m]))" },
    { title = "Completion tokens/s by model", filter = null, aligner = null, reducer = null, by = null, promql = "sum by (model) (rate(${local.promql_metric.tokens_out}_sum{monitored_resource=\"cloud_run_revision\"}[5m]))" },
    { title = "OCR pages/min by model", filter = null, aligner = null, reducer = null, by = null, promql = "sum by (model) (rate(${local.promql_metric.pages}_sum{monitored_resource=\"cloud_run_revision\"}[5m])) * 60" },
    { title = "Audio seconds/min by model", filter = null, aligner = null, reducer = null, by = null, promql = "sum by (model) (rate(${local.promql_metric.audio_seconds}_sum{monitored_resource=\"cloud_run_revision\"}[5m])) * 60" },
    { title = "Rate-limited requests/s", filter = local.user_metric.rate_limited, aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", by = ["metric.label.function"], promql = null },
    { title = "Circuit transitions by state", filter = local.user_metric.circuit_transitions, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", by = ["metric.label.state"], promql = null },
    { title = "Batches with failed items", filter = local.user_metric.batch_failures, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", by = [], promql = null },
    { title = "Dead-lettered batch messages", filter = "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${var.push_subscription_name}\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", by = [], promql = null },
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
              # The two shapes differ in type: each is encoded, the chosen one decoded.
              timeSeriesQuery = jsondecode(chart.promql != null ? jsonencode({
                prometheusQuery = chart.promql
                }) : jsonencode({
                timeSeriesFilter = {
                  filter = chart.filter
                  aggregation = {
                    alignmentPeriod    = "60s"
                    perSeriesAligner   = chart.aligner
                    crossSeriesReducer = chart.reducer
                    groupByFields      = chart.by
                  }
                }
              }))
            }]
          }
        }
      }]
    }
  })
}
