output "deployer_email" {
  description = "The Cloud Build deployer's service account email."
  value       = google_service_account.deployer.email
}

output "deployer_member" {
  description = "The deployer as an IAM member."
  value       = google_service_account.deployer.member
}

output "builder_id" {
  description = "The function build service account, as projects/P/serviceAccounts/EMAIL; known once its roles have settled."
  value       = google_service_account.builder.id
  depends_on  = [terraform_data.builder_iam_settled]
}

output "builder_roles" {
  description = "The roles the builder holds at project level."
  value       = local.builder_roles
}

output "builder_name" {
  description = "The builder's resource name, for IAM on the account itself."
  value       = google_service_account.builder.name
}

output "source_bucket" {
  description = "Bucket of the functions' bundles."
  value       = google_storage_bucket.sources.name
}

output "worker_pool" {
  description = "The private pool cloudbuild.yaml runs in."
  value       = google_cloudbuild_worker_pool.this.id
}
