# What the pipeline runs as and on: the Cloud Build deployer's service
# account, the functions' build service account, the bucket the bundles are
# uploaded to, and a private worker pool peered with the VPC (the migration
# step reaches Cloud SQL's private IP through it).

locals {
  builder_roles = ["roles/logging.logWriter", "roles/artifactregistry.writer", "roles/storage.objectViewer"]
}

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "${var.name}-deployer"
  display_name = "Gateway Cloud Build deployer"
  description  = "Runs cloudbuild.yaml: tests, migrations (IAM database user), terraform apply, smoke test."
}

# Terraform manages every resource of the stack, IAM included, so the deployer
# holds the admin role of each service it manages; nothing project-wide
# beyond that (no Owner/Editor). It may act as the gateway's own service
# accounts only (granted per account in the gateway module).
resource "google_project_iam_member" "deployer" {
  for_each = toset([
    "roles/cloudfunctions.admin",
    "roles/run.admin",
    "roles/compute.loadBalancerAdmin",
    "roles/compute.networkAdmin",
    "roles/compute.securityAdmin",
    "roles/servicenetworking.networksAdmin",
    "roles/cloudsql.admin",
    "roles/cloudsql.client",
    "roles/cloudsql.instanceUser",
    "roles/redis.admin",
    "roles/pubsub.admin",
    "roles/cloudscheduler.admin",
    "roles/secretmanager.admin",
    "roles/monitoring.editor",
    "roles/logging.configWriter",
    "roles/logging.logWriter",
    "roles/storage.admin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/cloudbuild.workerPoolOwner",
  ])

  project = var.project_id
  role    = each.value
  member  = google_service_account.deployer.member
}

# Project IAM, but only for the roles the stack itself grants at project
# level: without the condition the deployer could grant itself (or anyone)
# Owner. A change of the deployer's own roles therefore needs a human with
# Owner (docs/deploy.md); the pipeline's apply cannot do it.
# https://cloud.google.com/iam/docs/setting-limits-on-granting-roles
resource "google_project_iam_member" "deployer_grants" {
  project = var.project_id
  role    = "roles/resourcemanager.projectIamAdmin"
  member  = google_service_account.deployer.member

  condition {
    title       = "gateway-roles-only"
    description = "May grant and revoke only the roles the gateway's Terraform grants at project level."
    expression  = "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([${join(", ", [for r in sort(distinct(concat(var.grantable_roles, local.builder_roles))) : "'${r}'"])}])"
  }
}

# Terraform creates and deletes the gateway's service accounts.
resource "google_project_iam_member" "deployer_manages_accounts" {
  #checkov:skip=CKV_GCP_49:Terraform creates the gateway's service accounts; acting as them is granted per account (gateway module), never project-wide.
  project = var.project_id
  role    = "roles/iam.serviceAccountAdmin"
  member  = google_service_account.deployer.member
}

# Cloud Build uses this account to turn each bundle into a container.
resource "google_service_account" "builder" {
  project      = var.project_id
  account_id   = "${var.name}-builder"
  display_name = "Gateway function builder"
  description  = "Builds the functions' containers from their source bundles."
}

# The minimum a custom build account needs for Cloud Run functions: write
# build logs and the built image, and read the bundle. Cloud Functions copies
# each bundle into Google's own gcf-v2-sources-<project number>-<region>
# bucket and the build reads it from there, so reading only this module's
# bucket is not enough: the object viewer role is project-wide, as in the
# provider's own builder example (terraform-provider-google issue 20571).
resource "google_project_iam_member" "builder" {
  for_each = toset(local.builder_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.builder.member
}

# New IAM bindings take a while to reach every Google service (up to about
# seven minutes in the worst case, usually under one): a build started at once
# may still be refused the sources. Functions wait for this through the
# builder_id output. terraform_data is built into Terraform: no extra
# provider (and lock-file entry) for a sleep.
resource "terraform_data" "builder_iam_settled" {
  triggers_replace = [google_service_account.builder.email, sort(local.builder_roles)]

  provisioner "local-exec" {
    command = "sleep ${var.iam_settle_seconds}"
  }

  depends_on = [google_project_iam_member.builder]
}

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Holds only build inputs written by Terraform; Cloud Audit Logs record access, a second log bucket adds nothing.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name}-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # Every bundle has its own name (its hash); replaced versions are not needed.
  lifecycle_rule {
    condition {
      num_newer_versions = 1
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_cloudbuild_worker_pool" "this" {
  #checkov:skip=CKV_GCP_86:Workers need outbound internet (package installs, the smoke test through the public load balancer); a private pool peered with a VPC cannot use that VPC's Cloud NAT.
  project  = var.project_id
  name     = "${var.name}-pool"
  location = var.region

  worker_config {
    machine_type = var.worker_machine_type
    disk_size_gb = 100
    # Builds install packages and call the load balancer's public address.
    no_external_ip = false
  }

  network_config {
    peered_network          = var.network_id
    peered_network_ip_range = "/29"
  }
}
