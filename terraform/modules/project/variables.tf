variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "services" {
  type        = list(string)
  description = "APIs to enable in the project."
  default = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ]
}

variable "settle_seconds" {
  type        = number
  description = "Seconds to wait after enabling APIs before anything uses them (enablement propagates)."
  default     = 60
}
