variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "region" {
  type        = string
  description = "Region of the batch function."
}

variable "name" {
  type        = string
  description = "Prefix of every Pub/Sub resource's name, e.g. gateway-dev."
}

variable "batch_service_name" {
  type        = string
  description = "The batch function's Cloud Run service name."
}

variable "batch_url" {
  type        = string
  description = "The batch function's HTTPS URL; also the OIDC token's audience."
}

variable "push_path" {
  type        = string
  description = "Path of the batch function's push endpoint (POST /gateway/v1/batches/events in shared/http/routes.py)."
  default     = "/gateway/v1/batches/events"
}

variable "batch_timeout_seconds" {
  type        = number
  description = "The batch function's timeout; the ack deadline must be at least this."
}

variable "ack_deadline_seconds" {
  type        = number
  description = "Seconds Pub/Sub waits for an answer before redelivering (at most 600)."
  default     = 600

  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be between 10 and 600."
  }
}

variable "minimum_backoff_seconds" {
  type        = number
  description = "Shortest wait before a failed delivery is retried (exponential backoff, doubling)."
  default     = 10

  validation {
    condition     = var.minimum_backoff_seconds >= 0 && var.minimum_backoff_seconds <= 600
    error_message = "minimum_backoff_seconds must be between 0 and 600."
  }
}

variable "maximum_backoff_seconds" {
  type        = number
  description = "Longest wait between retries (at most 600)."
  default     = 600

  validation {
    condition     = var.maximum_backoff_seconds >= 0 && var.maximum_backoff_seconds <= 600
    error_message = "maximum_backoff_seconds must be between 0 and 600."
  }
}

variable "max_delivery_attempts" {
  type        = number
  description = "Deliveries before a message goes to the dead-letter topic (5 to 100). Refused pushes (429 at full scale) count: see docs/batches.md."
  default     = 100

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "pubsub_service_agent" {
  type        = string
  description = "The project's Pub/Sub service agent email."
}

variable "labels" {
  type        = map(string)
  description = "Labels on every topic and subscription."
  default     = {}
}

variable "publishers" {
  type        = list(string)
  description = "IAM members (e.g. serviceAccount:app@p.iam.gserviceaccount.com) allowed to publish batches."
  default     = []
}
