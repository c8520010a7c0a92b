# Secret Manager holds every secret the functions and the pipeline read.
# Terraform creates the secrets; values it already knows (the Redis AUTH
# string and CA) it writes too. The Mistral key and the smoke-test key are
# added by an operator (docs/deploy.md) so they never enter Terraform state;
# the smoke key starts as the placeholder "none" (the smoke test then skips
# its authenticated call) because Cloud Build refuses to start a build whose
# secret has no version, and the first real key needs a first deploy.

locals {
  operator_secrets = {
    mistral_api_key = "${var.name}-mistral-api-key"
    smoke_api_key   = "${var.name}-smoke-api-key"
  }
  generated_secrets = {
    redis_auth = "${var.name}-redis-auth"
    redis_ca   = "${var.name}-redis-ca"
  }
}

resource "google_secret_manager_secret" "this" {
  for_each = merge(local.operator_secrets, local.generated_secrets)

  project   = var.project_id
  secret_id = each.value
  labels    = var.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "redis_auth" {
  secret      = google_secret_manager_secret.this["redis_auth"].id
  secret_data = var.redis_auth_string
}

resource "google_secret_manager_secret_version" "redis_ca" {
  secret      = google_secret_manager_secret.this["redis_ca"].id
  secret_data = var.redis_ca_certificates
}

resource "google_secret_manager_secret_version" "smoke_placeholder" {
  secret      = google_secret_manager_secret.this["smoke_api_key"].id
  secret_data = "none"
}
