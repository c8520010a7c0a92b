# One Cloud Run function (2nd gen): its own service account with least
# privilege, its own IAM database user, its source bundle, and its secrets
# delivered from Secret Manager (never as plain environment variables).

locals {
  db_user = trimsuffix(google_service_account.this.email, ".gserviceaccount.com")

  # Set here because they follow from this module's own inputs. THREADS must
  # equal the request concurrency: functions-framework serves that many
  # requests at once per instance.
  runtime_environment = {
    THREADS = tostring(var.scaling.concurrency)
    DB_USER = local.db_user
  }
}

resource "google_service_account" "this" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-${var.function}"
  display_name = "Gateway ${var.function} function"
  description  = "Runtime identity of the ${var.function} function; nothing else uses it."
}

resource "google_project_iam_member" "runtime" {
  for_each = toset(var.runtime_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.this.member
}

# Access to exactly the secrets this function reads, secret by secret.
resource "google_secret_manager_secret_iam_member" "this" {
  for_each = var.secret_environment

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.this.member
}

resource "google_sql_user" "this" {
  project  = var.project_id
  instance = var.sql_instance_name
  name     = local.db_user
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# Named after the bundle's hash: a new bundle is a new object, which makes
# Terraform rebuild the function; an unchanged one redeploys nothing.
resource "google_storage_bucket_object" "source" {
  name   = "${var.function}/${filesha256(var.bundle_path)}.zip"
  bucket = var.source_bucket
  source = var.bundle_path
}

resource "google_cloudfunctions2_function" "this" {
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-${var.function}"
  description = var.description
  labels      = merge(var.labels, { function = var.function })

  build_config {
    runtime         = var.runtime
    entry_point     = var.entry_point
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = var.source_bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    min_instance_count               = var.scaling.min_instances
    max_instance_count               = var.scaling.max_instances
    max_instance_request_concurrency = var.scaling.concurrency
    available_cpu                    = var.scaling.cpu
    available_memory                 = var.scaling.memory
    timeout_seconds                  = var.scaling.timeout_seconds
    service_account_email            = google_service_account.this.email
    # Behind the load balancer: internal and GCLB. Off it (batch): internal
    # only, which still admits Pub/Sub push from this project.
    ingress_settings               = var.public ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true

    environment_variables = merge(var.environment, local.runtime_environment)

    dynamic "secret_environment_variables" {
      for_each = var.secret_environment
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }

    # Private ranges (Cloud SQL, Memorystore) through the VPC; everything else,
    # Mistral included, leaves directly.
    direct_vpc_egress = "VPC_EGRESS_PRIVATE_RANGES_ONLY"
    direct_vpc_network_interface {
      network    = var.network
      subnetwork = var.subnetwork
      tags       = ["gateway-function"]
    }
  }

  # The first revision starts at once: it must already be able to read its
  # secrets and log in to the database, and those grants must have propagated.
  depends_on = [terraform_data.runtime_iam_settled]
}

# IAM bindings take a while to reach every Google service (usually under a
# minute, up to about seven): a revision started at once may be refused its
# secrets. Runs again only when the identity or its grants change.
resource "terraform_data" "runtime_iam_settled" {
  triggers_replace = [google_service_account.this.email, sort(var.runtime_roles), sort(keys(var.secret_environment))]

  provisioner "local-exec" {
    command = "sleep ${var.iam_settle_seconds}"
  }

  depends_on = [
    google_project_iam_member.runtime,
    google_secret_manager_secret_iam_member.this,
    google_sql_user.this,
  ]
}

# Behind the load balancer, Cloud Run still checks IAM; a public API needs the
# invoker role for everyone, and the gateway authenticates callers itself
# (DESIGN 13). Ingress keeps the run.app URL closed to the internet.
# Organisations with domain-restricted sharing refuse allUsers: set
# public_invoker_member = "" there and follow docs/deploy.md (an exception
# for this project, or Cloud Run's invoker check turned off).
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.public && var.public_invoker_member != "" ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this.name
  role     = "roles/run.invoker"
  member   = var.public_invoker_member
}
