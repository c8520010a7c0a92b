variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "region" {
  type        = string
  description = "Region of the functions, Cloud SQL and Memorystore."
}

variable "environment" {
  type        = string
  description = "Deployment name, also the gateway's ENVIRONMENT setting."

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod (shared/config.py accepts those)."
  }
}

variable "domain" {
  type        = string
  description = "The gateway's domain, e.g. gateway.example.com."
}

variable "notification_email" {
  type        = string
  description = "Where alerts are sent."
}

variable "bundle_dir" {
  type        = string
  description = "Directory of the bundles built by `python -m deploy.bundle` (<function>.zip)."
}

variable "functions" {
  type = map(object({
    min_instances   = number
    max_instances   = number
    concurrency     = number
    cpu             = string
    memory          = string
    timeout_seconds = number
  }))
  description = "Scaling of each function: start, history, admin and batch."

  validation {
    condition     = length(setsubtract(toset(["start", "history", "admin", "batch"]), toset(keys(var.functions)))) == 0 && length(var.functions) == 4
    error_message = "functions must have exactly the keys start, history, admin and batch."
  }

  # The push subscription's ack deadline (at most 600 s) must cover a batch run.
  validation {
    condition     = try(var.functions["batch"].timeout_seconds <= 540, false)
    error_message = "The batch function's timeout must be at most 540 seconds."
  }
}

variable "db_tier" {
  type        = string
  description = "Cloud SQL machine tier."
}

variable "db_high_availability" {
  type        = bool
  description = "Cloud SQL standby in a second zone."
}

variable "db_max_connections_ceiling" {
  type        = number
  description = "The most connections the Cloud SQL tier should hold; the pools must fit."
}

variable "db_pool_size" {
  type        = number
  description = "Connections per function instance (DB_POOL_SIZE)."
  default     = 5
}

variable "deletion_protection" {
  type        = bool
  description = "Protect Cloud SQL from deletion."
  default     = true
}

variable "redis_tier" {
  type        = string
  description = "Memorystore tier: BASIC or STANDARD_HA."
}

variable "redis_memory_size_gb" {
  type        = number
  description = "Memorystore memory in GB."
  default     = 1
}

variable "functions_cidr" {
  type        = string
  description = "Range of the Direct VPC egress subnet."
  default     = "10.8.0.0/24"
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of the functions."
  default     = "INFO"
}

variable "mistral_server_url" {
  type        = string
  description = "Mistral's API base URL (MISTRAL_SERVER_URL)."
  default     = "https://api.mistral.ai"
}

variable "rate_limit_requests" {
  type        = number
  description = "Default requests per window per key (RATE_LIMIT_REQUESTS)."
  default     = 60
}

variable "rate_limit_window" {
  type        = number
  description = "Rate-limit window in seconds (RATE_LIMIT_WINDOW)."
  default     = 60
}

variable "rate_limit_failure_mode" {
  type        = string
  description = "What the limiter does when Redis is unreachable: fail-open or fail-closed."
  default     = "fail-open"

  validation {
    condition     = contains(["fail-open", "fail-closed"], var.rate_limit_failure_mode)
    error_message = "rate_limit_failure_mode must be fail-open or fail-closed."
  }
}

variable "waf_preview" {
  type        = bool
  description = "Run the Cloud Armor WAF signatures in preview (log only)."
  default     = true
}

variable "ip_requests_per_minute" {
  type        = number
  description = "Per-address requests per minute before Cloud Armor bans the address."
  default     = 1200
}

variable "latency_p95_threshold_ms" {
  type        = number
  description = "p95 latency that pages."
  default     = 30000
}

variable "batch_concurrency" {
  type        = number
  description = "Items of one batch delivery running at once."
  default     = 50
}

variable "batch_max_age_s" {
  type        = number
  description = "Batch messages published longer ago than this are recorded and dropped."
  default     = 86400
}

variable "batch_job_sweep_schedule" {
  type        = string
  description = "When Cloud Scheduler runs the batch job sweep, which meters Mistral batch jobs no caller read to their end (unix-cron, UTC)."
  default     = "*/10 * * * *"
}

variable "batch_publishers" {
  type        = list(string)
  description = "IAM members allowed to publish batches to the topic."
  default     = []
}

variable "labels" {
  type        = map(string)
  description = "Labels on every resource that takes them."
  default     = {}
}

variable "public_invoker_member" {
  type        = string
  description = "Invoker of the functions behind the load balancer: allUsers, or \"\" where the organisation's domain-restricted sharing refuses allUsers (docs/deploy.md)."
  default     = "allUsers"

  validation {
    condition     = contains(["allUsers", ""], var.public_invoker_member)
    error_message = "public_invoker_member must be allUsers or \"\"."
  }
}

variable "metric_propagation_seconds" {
  type        = number
  description = "Seconds alert policies wait after new log-based metrics."
  default     = 600
}

variable "batch_burst_messages" {
  type        = number
  description = "Batch messages published at once that must all run without one being dead-lettered unrun."
  default     = 1000
}

variable "batch_max_delivery_attempts" {
  type        = number
  description = "Deliveries of a batch message before it is dead-lettered (5 to 100); refused pushes count."
  default     = 100
}

variable "batch_minimum_backoff_seconds" {
  type        = number
  description = "First retry wait of a refused or failed batch delivery; it doubles up to the maximum."
  default     = 10
}

variable "batch_maximum_backoff_seconds" {
  type        = number
  description = "Longest wait between batch delivery retries (at most 600)."
  default     = 600
}

variable "db_connect_timeout_ms" {
  type        = number
  description = "How long opening an instance's first database connection may take (DB_CONNECT_TIMEOUT_MS) before the request gets 503 + Retry-After."
  default     = 10000
}

variable "redis_connect_timeout_ms" {
  type        = number
  description = "How long opening an instance's first Redis connection (TCP, TLS, AUTH) may take (REDIS_CONNECT_TIMEOUT_MS); later connections and commands keep 100 ms."
  default     = 2000
}
