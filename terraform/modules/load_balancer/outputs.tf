output "ip_address" {
  description = "The load balancer's address: point the domain's A record at it."
  value       = google_compute_global_address.this.address
}

output "url" {
  description = "The gateway's URL."
  value       = "https://${var.domain}"
}

output "url_map" {
  description = "The HTTPS URL map's name."
  value       = google_compute_url_map.https.name
}

output "route_rule_count" {
  description = "How many route rules the URL map holds."
  value       = length(local.gateway_route_rules)
}
