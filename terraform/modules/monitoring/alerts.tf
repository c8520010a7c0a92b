# Alert policies, an uptime check per public function's health route through
# the load balancer, and one email notification channel.

locals {
  metric     = "logging.googleapis.com/user"
  on_gateway = "resource.type=\"cloud_run_revision\""
  channels   = [google_monitoring_notification_channel.email.id]
}

# Monitoring refuses an alert policy on a log-based metric it does not know
# yet ("Cannot find metric(s)"), and a new log-based metric takes minutes to
# become known. Every policy on a log-based metric waits for this, which waits
# after the metrics; on a first apply it runs while Cloud SQL and Memorystore
# are created, so it costs little. Runs again only when a metric is added or
# renamed. terraform_data is built into Terraform (no extra provider).
resource "terraform_data" "metrics_known" {
  triggers_replace = sort(concat(
    [for m in [
      google_logging_metric.requests,
      google_logging_metric.latency,
      google_logging_metric.upstream_latency,
      google_logging_metric.rate_limited,
      google_logging_metric.circuit_transitions,
      google_logging_metric.batch_failures,
    ] : m.id],
    [for m in google_logging_metric.tokens : m.id],
  ))

  provisioner "local-exec" {
    command = "sleep ${var.metric_propagation_seconds}"
  }
}

resource "google_monitoring_notification_channel" "email" {
  project      = var.project_id
  display_name = "${var.name} on-call email"
  type         = "email"
  labels = {
    email_address = var.notification_email
  }
}

resource "google_monitoring_uptime_check_config" "health" {
  for_each = var.health_paths

  project      = var.project_id
  display_name = "${var.name} ${each.key} health"
  timeout      = "10s"
  period       = "60s"

  http_check {
    path         = each.value
    port         = 443
    use_ssl      = true
    validate_ssl = true
    accepted_response_status_codes {
      status_value = 200
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = var.domain
    }
  }
}

resource "google_monitoring_alert_policy" "uptime" {
  project               = var.project_id
  display_name          = "${var.name}: health check failing through the load balancer"
  combiner              = "OR"
  notification_channels = local.channels

  dynamic "conditions" {
    for_each = google_monitoring_uptime_check_config.health
    content {
      display_name = "${conditions.key} health fails from several regions"
      condition_threshold {
        filter     = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND metric.label.check_id=\"${conditions.value.uptime_check_id}\" AND resource.type=\"uptime_url\""
        comparison = "COMPARISON_GT"
        # More than one checker region failing: one region's hiccup is not an outage.
        threshold_value = 1
        duration        = "120s"
        aggregations {
          alignment_period     = "60s"
          per_series_aligner   = "ALIGN_NEXT_OLDER"
          cross_series_reducer = "REDUCE_COUNT_FALSE"
          group_by_fields      = ["resource.label.host"]
        }
        trigger {
          count = 1
        }
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A health route (`GET /gateway/v1/health/<function>`) is not answering 200 through the load balancer. The body names the dependency that failed (database or redis). Check the function's logs, Cloud SQL and Memorystore."
  }
}

resource "google_monitoring_alert_policy" "error_rate" {
  project               = var.project_id
  display_name          = "${var.name}: 5xx rate above ${var.error_rate_threshold * 100}%"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "share of 5xx answers, per function"
    condition_threshold {
      filter             = "metric.type=\"${local.metric}/${google_logging_metric.requests.name}\" AND ${local.on_gateway} AND metric.label.status=starts_with(\"5\")"
      denominator_filter = "metric.type=\"${local.metric}/${google_logging_metric.requests.name}\" AND ${local.on_gateway}"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.error_rate_threshold
      duration           = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${var.error_rate_threshold * 100}% of a function's answers are 5xx. The `error_type` label of the requests metric says which: upstream_* and circuit_open point at Mistral, service_unavailable at Cloud SQL or Memorystore."
  }

  depends_on = [terraform_data.metrics_known]
}

resource "google_monitoring_alert_policy" "latency_p95" {
  project               = var.project_id
  display_name          = "${var.name}: p95 latency above ${var.latency_p95_threshold_ms} ms"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "p95 latency per function"
    condition_threshold {
      filter          = "metric.type=\"${local.metric}/${google_logging_metric.latency.name}\" AND ${local.on_gateway}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.latency_p95_threshold_ms
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["metric.label.function"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function's 95th percentile latency is above ${var.latency_p95_threshold_ms} ms for 10 minutes. Compare with the upstream latency metric: if Mistral is slow too, the gateway is not the cause. Streamed answers count until their last event."
  }

  depends_on = [terraform_data.metrics_known]
}

resource "google_monitoring_alert_policy" "circuit_open" {
  project               = var.project_id
  display_name          = "${var.name}: Mistral circuit breaker opened"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "circuit transitions to open"
    condition_threshold {
      filter          = "metric.type=\"${local.metric}/${google_logging_metric.circuit_transitions.name}\" AND ${local.on_gateway} AND metric.label.state=\"open\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The shared circuit breaker opened: Mistral failed repeatedly, and calls are refused with 503 circuit_open until it half-opens. Check Mistral's status and the upstream latency and error_type metrics."
  }

  depends_on = [terraform_data.metrics_known]
}

resource "google_monitoring_alert_policy" "rate_limited_spike" {
  project               = var.project_id
  display_name          = "${var.name}: rate-limit rejections above ${var.rate_limited_per_second}/s"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "429s from the gateway's rate limits and token budgets"
    condition_threshold {
      filter          = "metric.type=\"${local.metric}/${google_logging_metric.rate_limited.name}\" AND ${local.on_gateway}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.rate_limited_per_second
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Many requests are refused by per-key rate limits or token budgets. A single key in a retry loop, or limits set too low for real use: the access log's key_prefix says which key."
  }

  depends_on = [terraform_data.metrics_known]
}

resource "google_monitoring_alert_policy" "batch_failures" {
  project               = var.project_id
  display_name          = "${var.name}: batches finishing with failed items"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "batches with failed items"
    condition_threshold {
      filter          = "metric.type=\"${local.metric}/${google_logging_metric.batch_failures.name}\" AND ${local.on_gateway}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.batch_failures_threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Batches finished with failed items. Per-item status is readable at GET /gateway/v1/batches/{batch_id}/items."
  }

  depends_on = [terraform_data.metrics_known]
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "${var.name}: batch messages dead-lettered"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "messages forwarded to the dead-letter topic"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${var.push_subscription_name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A batch message failed every delivery attempt and was moved to the dead-letter topic. It is kept in the `${var.dead_letter_subscription_name}` subscription: inspect it, fix the cause, and republish it to the batches topic."
  }
}

# The batch job sweep (terraform/modules/scheduler): Cloud Scheduler logs each
# attempt it makes, at ERROR when the batch function answered an error (a run
# in which every job failed answers 503) or did not answer within the deadline.
# One failed run is no emergency (the next run takes the jobs it left), so this
# notifies at most once an hour while runs keep failing.
resource "google_monitoring_alert_policy" "sweep_failed" {
  project               = var.project_id
  display_name          = "${var.name}: batch job sweep failing"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "a sweep run failed"
    condition_matched_log {
      filter = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"${var.sweep_job_name}\" AND severity>=ERROR"
    }
  }

  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The batch job sweep (`${var.sweep_job_name}`) failed: Mistral batch jobs no caller reads are not being metered. The batch function's `batch_job_sweep` and `batch_job_sweep_failed` log lines say which jobs failed and why; `gcloud scheduler jobs run ${var.sweep_job_name}` runs it again (docs/batches.md)."
  }
}
