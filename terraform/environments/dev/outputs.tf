output "gateway_url" {
  description = "The gateway's URL: `Mistral(api_key=<gateway key>, server_url=<this>)`."
  value       = module.gateway.gateway_url
}

output "load_balancer_ip" {
  description = "Point the domain's DNS A record at this address."
  value       = module.gateway.load_balancer_ip
}

output "function_names" {
  description = "Function name by function."
  value       = module.gateway.function_names
}

output "function_db_users" {
  description = "IAM database user by function (granted data access by `python -m deploy.grants`)."
  value       = module.gateway.function_db_users
}

output "sql_connection_name" {
  description = "Cloud SQL connection name (CLOUD_SQL_INSTANCE)."
  value       = module.gateway.sql_connection_name
}

output "db_name" {
  description = "The gateway's database (DB_NAME)."
  value       = module.gateway.db_name
}

output "db_max_connections" {
  description = "max_connections, derived from the pools."
  value       = module.gateway.db_max_connections
}

output "deployer_db_user" {
  description = "The deployer's IAM database user (runs migrations)."
  value       = module.gateway.deployer_db_user
}

output "deployer_email" {
  description = "Cloud Build's service account."
  value       = module.gateway.deployer_email
}

output "worker_pool" {
  description = "The private pool cloudbuild.yaml runs in."
  value       = module.gateway.worker_pool
}

output "source_bucket" {
  description = "Bucket of the functions' bundles."
  value       = module.gateway.source_bucket
}

output "topic_name" {
  description = "Publish batches to this topic."
  value       = module.gateway.topic_name
}

output "dead_letter_subscription" {
  description = "Dead-lettered batches wait in this subscription."
  value       = module.gateway.dead_letter_subscription
}

output "secret_ids" {
  description = "Secret ids by purpose."
  value       = module.gateway.secret_ids
}
