output "project_number" {
  description = "The project's number, which names its service agents."
  value       = data.google_project.this.number
}

output "pubsub_service_agent" {
  description = "The Pub/Sub service agent, which publishes dead letters and mints push OIDC tokens."
  value       = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

output "enabled_services" {
  description = "The enabled APIs, available once enablement has settled."
  value       = [for s in google_project_service.this : s.service]
  depends_on  = [terraform_data.services_settled]
}
