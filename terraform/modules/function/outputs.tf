output "name" {
  description = "The function's name, which is also its Cloud Run service's name."
  value       = google_cloudfunctions2_function.this.name
}

output "uri" {
  description = "The function's own HTTPS URL (closed to the internet by ingress)."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

output "service_account_email" {
  description = "The function's runtime service account."
  value       = google_service_account.this.email
}

output "db_user" {
  description = "The function's IAM database user (DB_USER)."
  value       = google_sql_user.this.name
}
