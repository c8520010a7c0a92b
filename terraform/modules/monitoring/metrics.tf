# Log-based metrics: per-request signals come from the access line, never
# from one Monitoring API call per request (DESIGN 9 and 13).

resource "google_logging_metric" "requests" {
  project     = var.project_id
  name        = "${var.metric_prefix}/requests"
  description = "Requests by function, route, method, status and error type."
  filter      = local.access_logs

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function that answered."
    }
    labels {
      key         = "route"
      value_type  = "STRING"
      description = "The route template."
    }
    labels {
      key         = "method"
      value_type  = "STRING"
      description = "HTTP method."
    }
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "HTTP status."
    }
    labels {
      key         = "error_type"
      value_type  = "STRING"
      description = "The gateway error type, empty on success."
    }
  }

  label_extractors = {
    function   = "EXTRACT(${local.log_field.function})"
    route      = "EXTRACT(${local.log_field.route})"
    method     = "EXTRACT(${local.log_field.method})"
    status     = "EXTRACT(${local.log_field.status})"
    error_type = "EXTRACT(${local.log_field.error_type})"
  }
}

resource "google_logging_metric" "latency" {
  project         = var.project_id
  name            = "${var.metric_prefix}/latency"
  description     = "Gateway latency per request (a streamed answer counts until its last event)."
  filter          = local.access_logs
  value_extractor = "EXTRACT(${local.log_field.latency_ms})"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function that answered."
    }
    labels {
      key         = "route"
      value_type  = "STRING"
      description = "The route template."
    }
  }

  label_extractors = {
    function = "EXTRACT(${local.log_field.function})"
    route    = "EXTRACT(${local.log_field.route})"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 64
      growth_factor      = 1.25
      scale              = 1
    }
  }
}

resource "google_logging_metric" "upstream_latency" {
  project         = var.project_id
  name            = "${var.metric_prefix}/upstream_latency"
  description     = "Time spent waiting for Mistral, per request that called it."
  filter          = "${local.access_logs} AND ${local.log_field.upstream_latency_ms}:*"
  value_extractor = "EXTRACT(${local.log_field.upstream_latency_ms})"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function that called Mistral."
    }
    labels {
      key         = "model"
      value_type  = "STRING"
      description = "The model (empty when an agent was used)."
    }
  }

  label_extractors = {
    function = "EXTRACT(${local.log_field.function})"
    model    = "EXTRACT(${local.log_field.model})"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 64
      growth_factor      = 1.25
      scale              = 1
    }
  }
}

# Tokens, and what Mistral bills that is not tokens (OCR pages, seconds of audio), are
# values, not events: distributions whose sum is the count.
resource "google_logging_metric" "tokens" {
  for_each = {
    tokens_in     = "Prompt tokens per request."
    tokens_out    = "Completion tokens per request."
    pages         = "OCR pages per request (Mistral bills OCR by the page)."
    audio_seconds = "Seconds of audio per transcription (Mistral bills them by the minute)."
  }

  project         = var.project_id
  name            = "${var.metric_prefix}/${each.key}"
  description     = each.value
  filter          = "${local.access_logs} AND ${local.log_field[each.key]}>0"
  value_extractor = "EXTRACT(${local.log_field[each.key]})"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function that answered."
    }
    labels {
      key         = "model"
      value_type  = "STRING"
      description = "The model (empty when an agent was used)."
    }
  }

  label_extractors = {
    function = "EXTRACT(${local.log_field.function})"
    model    = "EXTRACT(${local.log_field.model})"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "rate_limited" {
  project     = var.project_id
  name        = "${var.metric_prefix}/rate_limited"
  description = "Requests refused with 429 by the gateway's per-key rate limit (limited) or token budget (budget)."
  filter      = "${local.access_logs} AND (${local.log_field.rate_limit}=\"limited\" OR ${local.log_field.rate_limit}=\"budget\")"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function that refused."
    }
    labels {
      key         = "route"
      value_type  = "STRING"
      description = "The route template."
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "limited (request rate) or budget (tokens)."
    }
  }

  label_extractors = {
    function = "EXTRACT(${local.log_field.function})"
    route    = "EXTRACT(${local.log_field.route})"
    reason   = "EXTRACT(${local.log_field.rate_limit})"
  }
}

resource "google_logging_metric" "circuit_transitions" {
  project     = var.project_id
  name        = "${var.metric_prefix}/circuit_transitions"
  description = "Circuit breaker state changes, by new state."
  filter      = "${local.gateway_logs} AND ${local.log_field.event}=\"circuit_transition\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function whose breaker moved."
    }
    labels {
      key         = "state"
      value_type  = "STRING"
      description = "closed, open or half_open."
    }
  }

  label_extractors = {
    function = "EXTRACT(${local.log_field.function})"
    state    = "EXTRACT(${local.log_field.state})"
  }
}

resource "google_logging_metric" "batch_failures" {
  project     = var.project_id
  name        = "${var.metric_prefix}/batch_failures"
  description = "Batches that finished with at least one failed item."
  filter      = "${local.gateway_logs} AND ${local.log_field.event}=\"batch_finished\" AND ${local.log_field.items_failed}>0"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function that ran the batch."
    }
  }

  label_extractors = {
    function = "EXTRACT(${local.log_field.function})"
  }
}
