output "instance_name" {
  description = "The Cloud SQL instance's name."
  value       = google_sql_database_instance.this.name
}

output "connection_name" {
  description = "project:region:instance, for the connector (CLOUD_SQL_INSTANCE)."
  value       = google_sql_database_instance.this.connection_name
}

output "database_name" {
  description = "The gateway's database (DB_NAME)."
  value       = google_sql_database.this.name
}

output "max_connections" {
  description = "The max_connections flag (the ceiling the pools must fit in)."
  value       = var.max_connections_ceiling
}

output "pool_connections" {
  description = "What the pools may open at full scale-out, plus the reserve."
  value       = local.max_connections
}

output "deployer_db_user" {
  description = "The deployer's IAM database user, which runs migrations."
  value       = google_sql_user.deployer.name
}
