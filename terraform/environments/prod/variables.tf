variable "project_id" {
  type        = string
  description = "The Google Cloud project for the production gateway."
}

variable "region" {
  type        = string
  description = "Region of the functions, Cloud SQL and Memorystore."
}

variable "environment" {
  type        = string
  description = "Deployment name and the gateway's ENVIRONMENT."
  default     = "prod"
}

variable "domain" {
  type        = string
  description = "The production gateway's domain."
}

variable "notification_email" {
  type        = string
  description = "Where alerts are sent."
}

variable "bundle_dir" {
  type        = string
  description = "Directory of the bundles from `python -m deploy.bundle --out <dir>`."
  default     = "../../../dist"
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
  description = "Scaling per function. Warm instances on the request paths: no cold start for the first caller; start keeps two, so a burst of 300 turns finds 2 x 150 places."
  # start spends most of a turn waiting for Mistral (seconds) and about 2 ms of CPU on it,
  # all of it in one Python interpreter per instance. 150 in flight keep one vCPU under
  # half busy, and a burst of 150 turns arriving at once is through the interpreter within
  # 400 ms (p99 added 311-347 ms; 300 at once: 780-839 ms): bench/RESULTS.md, issue 22.
  # batch: 10 x 4 = 40 deliveries at once works a burst of 1,000 through without
  # dead-lettering (docs/batches.md).
  default = {
    start   = { min_instances = 2, max_instances = 24, concurrency = 150, cpu = "1", memory = "1Gi", timeout_seconds = 300 }
    history = { min_instances = 1, max_instances = 20, concurrency = 80, cpu = "1", memory = "512Mi", timeout_seconds = 60 }
    admin   = { min_instances = 0, max_instances = 5, concurrency = 80, cpu = "1", memory = "512Mi", timeout_seconds = 120 }
    batch   = { min_instances = 0, max_instances = 10, concurrency = 4, cpu = "1", memory = "1Gi", timeout_seconds = 540 }
  }
}

variable "db_tier" {
  type        = string
  description = "Cloud SQL tier: 4 vCPU, 15 GB."
  default     = "db-custom-4-15360"
}

variable "db_high_availability" {
  type        = bool
  description = "A standby in a second zone, automatic failover."
  default     = true
}

variable "db_max_connections_ceiling" {
  type        = number
  description = "Connections the prod tier should hold (Cloud SQL's own default at 15 GB is about 400)."
  default     = 400
}

variable "db_pool_size" {
  type        = number
  description = "Connections per function instance (DB_POOL_SIZE)."
  default     = 5
}

variable "redis_tier" {
  type        = string
  description = "Memorystore tier: replica and automatic failover."
  default     = "STANDARD_HA"
}

variable "redis_memory_size_gb" {
  type        = number
  description = "Memorystore memory in GB."
  default     = 1
}

variable "waf_preview" {
  type        = bool
  description = "Cloud Armor WAF signatures log only."
  default     = true
}

variable "batch_publishers" {
  type        = list(string)
  description = "IAM members allowed to publish batches."
  default     = []
}

variable "labels" {
  type        = map(string)
  description = "Extra labels on every resource that takes them."
  default     = {}
}

variable "public_invoker_member" {
  type        = string
  description = "allUsers, or \"\" where organisation policy (domain-restricted sharing) refuses allUsers: docs/deploy.md."
  default     = "allUsers"
}
