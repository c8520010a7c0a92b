output "secret_ids" {
  description = "Secret id by purpose: mistral_api_key, smoke_api_key, redis_auth, redis_ca."
  value       = { for k, s in google_secret_manager_secret.this : k => s.secret_id }
}

output "redis_versions" {
  description = "The Redis secrets' current versions (depend on them before starting functions)."
  value       = [google_secret_manager_secret_version.redis_auth.id, google_secret_manager_secret_version.redis_ca.id]
}
