output "host" {
  description = "The instance's private address (REDIS_HOST)."
  value       = google_redis_instance.this.host
}

output "port" {
  description = "The instance's port (REDIS_PORT); with TLS it is not 6379."
  value       = google_redis_instance.this.port
}

output "auth_string" {
  description = "The AUTH string, for Secret Manager only."
  value       = google_redis_instance.this.auth_string
  sensitive   = true
}

output "ca_certificates" {
  description = "Every current server CA certificate, PEM, concatenated (for REDIS_CA_CERT)."
  value       = join("\n", [for c in google_redis_instance.this.server_ca_certs : c.cert])
}
