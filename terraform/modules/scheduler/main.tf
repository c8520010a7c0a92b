# The batch job sweep (shared.resources.sweep): Cloud Scheduler calls the batch
# function's private sweep route on a schedule, with an OIDC token minted as an
# identity that may invoke the batch function and nothing else. Cloud Run IAM
# checks the token, as it does the batches push subscription's; no gateway key
# is stored in the job. An operator runs it at once with
# `gcloud scheduler jobs run <name>-batch-job-sweep --location <region>`.

resource "google_service_account" "sweep" {
  project      = var.project_id
  account_id   = "${var.name}-sweep"
  display_name = "Gateway batch job sweep"
  description  = "Cloud Scheduler identity: run.invoker on the batch function only."
}

resource "google_cloud_run_v2_service_iam_member" "sweep_invoker" {
  project  = var.project_id
  location = var.region
  name     = var.batch_service_name
  role     = "roles/run.invoker"
  member   = google_service_account.sweep.member
}

resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name}-batch-job-sweep"
  description = "Meters Mistral batch jobs no caller has read to their end (docs/batches.md)."
  schedule    = var.schedule
  time_zone   = "Etc/UTC"

  # A run stops starting jobs after BATCH_TIME_BUDGET_S and then finishes within the
  # batch function's timeout: Cloud Scheduler must wait that long before it calls the
  # attempt failed (HTTP targets: 15 s to 30 min).
  attempt_deadline = "${var.batch_timeout_seconds}s"

  # No retry: the next scheduled run takes whatever this one left, and a retry
  # would overlap the run still working (the two would take different jobs, but
  # compete for the same Mistral quota).
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${var.batch_url}${var.sweep_path}"

    oidc_token {
      service_account_email = google_service_account.sweep.email
      audience              = var.batch_url
    }
  }

  lifecycle {
    precondition {
      condition     = var.batch_timeout_seconds >= 15 && var.batch_timeout_seconds <= 1800
      error_message = "The batch function's timeout (${var.batch_timeout_seconds} s) must be a Cloud Scheduler attempt deadline: 15 to 1800 s."
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.sweep_invoker]
}
