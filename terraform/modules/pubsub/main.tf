# Batches: a topic, an explicit push subscription to the batch function, and
# a dead-letter topic. Not an Eventarc trigger: a dead-letter topic cannot be
# set on an Eventarc-managed subscription from Terraform (DESIGN 13).

resource "google_pubsub_topic" "batches" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; batch requests hold prompts that are also stored in Cloud SQL under the same default encryption.
  project                    = var.project_id
  name                       = "${var.name}-batches"
  labels                     = var.labels
  message_retention_duration = "86400s"
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption, as for the batches topic.
  project = var.project_id
  name    = "${var.name}-batches-dead-letter"
  labels  = var.labels
}

# A topic keeps nothing by itself: without a subscription, dead letters would
# be dropped. This one holds them for an operator to inspect and replay.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name}-batches-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = var.labels
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# The identity Pub/Sub signs push requests as. It may invoke the batch
# function and nothing else.
resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${var.name}-batch-push"
  display_name = "Gateway batch push"
  description  = "Pub/Sub push subscription identity: run.invoker on the batch function only."
}

resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  project  = var.project_id
  location = var.region
  name     = var.batch_service_name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# Pub/Sub mints the OIDC token as the push identity (needed on projects
# created before April 2021, harmless after).
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${var.pubsub_service_agent}"
}

resource "google_pubsub_subscription" "batch_push" {
  project = var.project_id
  name    = "${var.name}-batches-push"
  topic   = google_pubsub_topic.batches.id
  labels  = var.labels

  # Pub/Sub redelivers a message not acknowledged in time: the deadline must
  # cover a whole run of the function, or a slow batch is processed twice.
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${var.batch_url}${var.push_path}"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = var.batch_url
    }
  }

  # Pub/Sub counts every refused push as a delivery attempt, 429 included
  # (the batch function at max instances x concurrency): a burst must not use
  # up a message's attempts before it ever runs. docs/batches.md has the
  # arithmetic; the gateway module checks it against the scaling settings.
  retry_policy {
    minimum_backoff = "${var.minimum_backoff_seconds}s"
    maximum_backoff = "${var.maximum_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  lifecycle {
    precondition {
      condition     = var.ack_deadline_seconds >= var.batch_timeout_seconds
      error_message = "ack_deadline_seconds (${var.ack_deadline_seconds}) must be at least the batch function's timeout (${var.batch_timeout_seconds})."
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.push_invoker]
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to the
# dead-letter topic and acknowledge on the source subscription.
# https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.batch_push.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${var.pubsub_service_agent}"
}

# Whoever submits batches (an application's service account, say) publishes
# to the topic and needs nothing else.
resource "google_pubsub_topic_iam_member" "publishers" {
  for_each = toset(var.publishers)

  project = var.project_id
  topic   = google_pubsub_topic.batches.id
  role    = "roles/pubsub.publisher"
  member  = each.value
}
