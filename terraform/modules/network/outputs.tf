output "network_id" {
  description = "The VPC's id."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "The VPC's name."
  value       = google_compute_network.this.name
}

output "subnetwork_name" {
  description = "The Direct VPC egress subnet's name."
  value       = google_compute_subnetwork.functions.name
}

output "services_range_name" {
  description = "Name of the private services access range."
  value       = google_compute_global_address.services.name
}

output "services_connection" {
  description = "The private services connection (depend on it before creating Cloud SQL or Memorystore)."
  value       = google_service_networking_connection.services.id
}
