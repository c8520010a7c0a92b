output "job_name" {
  description = "The Cloud Scheduler job that runs the batch job sweep."
  value       = google_cloud_scheduler_job.sweep.name
}

output "service_account_name" {
  description = "The sweep identity's resource name (projects/P/serviceAccounts/EMAIL), for IAM on the account."
  value       = google_service_account.sweep.name
}
