output "log_metrics" {
  description = "The log-based metrics' names."
  value = concat(
    [for m in [
      google_logging_metric.requests,
      google_logging_metric.latency,
      google_logging_metric.upstream_latency,
      google_logging_metric.rate_limited,
      google_logging_metric.circuit_transitions,
      google_logging_metric.batch_failures,
    ] : m.name],
    [for m in google_logging_metric.tokens : m.name],
  )
}

output "dashboard_id" {
  description = "The dashboard's id."
  value       = google_monitoring_dashboard.gateway.id
}

output "uptime_check_ids" {
  description = "Uptime check id by function."
  value       = { for k, c in google_monitoring_uptime_check_config.health : k => c.uptime_check_id }
}
