variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "name" {
  type        = string
  description = "Prefix of the functions' names (their Cloud Run services start with it), e.g. gateway-dev."
}

variable "metric_prefix" {
  type        = string
  description = "Prefix of the log-based metrics' names, e.g. gateway-dev (metric types become logging.googleapis.com/user/<prefix>/...)."
}

variable "domain" {
  type        = string
  description = "The gateway's domain, checked by the uptime checks."
}

variable "health_paths" {
  type        = map(string)
  description = "Function -> its health route, checked through the load balancer."
}

variable "push_subscription_name" {
  type        = string
  description = "The batch push subscription, whose dead letters are alerted on."
}

variable "dead_letter_subscription_name" {
  type        = string
  description = "The subscription holding dead letters, named in the alert's documentation."
}

variable "notification_email" {
  type        = string
  description = "Where alerts are sent."

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+$", var.notification_email))
    error_message = "notification_email must be an email address."
  }
}

variable "error_rate_threshold" {
  type        = number
  description = "Share of 5xx answers (0 to 1) over 5 minutes that pages."
  default     = 0.05
}

variable "latency_p95_threshold_ms" {
  type        = number
  description = "p95 latency (ms) over 10 minutes that pages. Conversations wait on Mistral, and streams count whole: set it from observed traffic."
  default     = 30000
}

variable "rate_limited_per_second" {
  type        = number
  description = "Rate-limit rejections per second, over 5 minutes, that page."
  default     = 5
}

variable "batch_failures_threshold" {
  type        = number
  description = "Batches with failed items in 5 minutes above which to page."
  default     = 0
}

variable "metric_propagation_seconds" {
  type        = number
  description = "Seconds alert policies wait after new log-based metrics (Monitoring refuses a policy on a metric it does not know yet: up to about 10 minutes)."
  default     = 600
}

variable "sweep_job_name" {
  type        = string
  description = "The Cloud Scheduler job that runs the batch job sweep, whose failed attempts alert."
}
