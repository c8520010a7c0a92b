variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "region" {
  type        = string
  description = "Region of the batch function and of the scheduler job."
}

variable "name" {
  type        = string
  description = "Prefix of the job's and its identity's names, e.g. gateway-dev."
}

variable "batch_service_name" {
  type        = string
  description = "The batch function's Cloud Run service name."
}

variable "batch_url" {
  type        = string
  description = "The batch function's HTTPS URL; also the OIDC token's audience."
}

variable "sweep_path" {
  type        = string
  description = "Path of the batch function's sweep route (POST /gateway/v1/batch/jobs/sweep in shared/http/routes.py)."
  default     = "/gateway/v1/batch/jobs/sweep"
}

variable "batch_timeout_seconds" {
  type        = number
  description = "The batch function's timeout: how long the scheduler waits for a run."
}

variable "schedule" {
  type        = string
  description = "When the sweep runs (unix-cron, UTC). Every run asks Mistral once about each batch job not yet metered, up to BATCH_SWEEP_MAX_JOBS."
  default     = "*/10 * * * *"
}
