output "gateway_url" {
  description = "The gateway's URL: the SDK's server_url."
  value       = module.load_balancer.url
}

output "load_balancer_ip" {
  description = "Point the domain's A record here."
  value       = module.load_balancer.ip_address
}

output "function_names" {
  description = "Function name by function."
  value       = { for f, m in module.function : f => m.name }
}

output "function_db_users" {
  description = "IAM database user by function."
  value       = { for f, m in module.function : f => m.db_user }
}

output "sql_connection_name" {
  description = "Cloud SQL connection name (CLOUD_SQL_INSTANCE)."
  value       = module.database.connection_name
}

output "db_name" {
  description = "The gateway's database."
  value       = module.database.database_name
}

output "db_max_connections" {
  description = "max_connections as derived from the pools."
  value       = module.database.max_connections
}

output "deployer_db_user" {
  description = "The deployer's IAM database user (runs migrations)."
  value       = module.database.deployer_db_user
}

output "deployer_email" {
  description = "Cloud Build's service account."
  value       = module.cicd.deployer_email
}

output "worker_pool" {
  description = "The private pool cloudbuild.yaml runs in."
  value       = module.cicd.worker_pool
}

output "source_bucket" {
  description = "Bucket of the functions' bundles."
  value       = module.cicd.source_bucket
}

output "topic_name" {
  description = "Publish batches here."
  value       = module.pubsub.topic_name
}

output "dead_letter_subscription" {
  description = "Dead-lettered batches wait here."
  value       = module.pubsub.dead_letter_subscription_name
}

output "secret_ids" {
  description = "Secret ids by purpose; add versions to mistral_api_key and smoke_api_key by hand."
  value       = module.secrets.secret_ids
}
