variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "region" {
  type        = string
  description = "Region of the Cloud SQL instance (the functions' region)."
}

variable "name" {
  type        = string
  description = "Instance name. Cloud SQL keeps a deleted instance's name reserved for about a week."
}

variable "database_name" {
  type        = string
  description = "The gateway's database (DB_NAME)."
  default     = "gateway"
}

variable "database_version" {
  type        = string
  description = "PostgreSQL major version."
  default     = "POSTGRES_18"

  validation {
    condition     = startswith(var.database_version, "POSTGRES_")
    error_message = "The gateway speaks PostgreSQL only: database_version must be POSTGRES_<n>."
  }
}

variable "tier" {
  type        = string
  description = "Machine tier, e.g. db-custom-1-3840 (1 vCPU, 3.75 GB). Shared-core tiers carry no SLA."
}

variable "edition" {
  type        = string
  description = "Cloud SQL edition: ENTERPRISE or ENTERPRISE_PLUS."
  default     = "ENTERPRISE"

  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.edition)
    error_message = "edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
}

variable "high_availability" {
  type        = bool
  description = "A standby in a second zone (REGIONAL): roughly doubles the instance's price."
}

variable "disk_size_gb" {
  type        = number
  description = "Initial SSD size; it grows automatically."
  default     = 10
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the instance, in Terraform and in the API."
  default     = true
}

variable "network_id" {
  type        = string
  description = "The VPC the instance's private IP lives in."
}

variable "services_range_name" {
  type        = string
  description = "The private services access range to take the instance's address from."
}

variable "backup_start_time" {
  type        = string
  description = "Daily backup window start, HH:MM in UTC."
  default     = "02:00"
}

variable "retained_backups" {
  type        = number
  description = "Daily backups kept."
  default     = 14
}

variable "log_retention_days" {
  type        = number
  description = "Days of write-ahead log kept for point-in-time recovery (1 to 7 on ENTERPRISE)."
  default     = 7

  validation {
    condition     = var.log_retention_days >= 1 && var.log_retention_days <= 35
    error_message = "log_retention_days must be between 1 and 35."
  }
}

variable "max_instances_by_function" {
  type        = map(number)
  description = "Each function's max_instance_count, to size max_connections."

  validation {
    condition     = length(var.max_instances_by_function) > 0
    error_message = "At least one function must use the database."
  }
}

variable "db_pool_size" {
  type        = number
  description = "Connections in each instance's pool (DB_POOL_SIZE)."

  validation {
    condition     = var.db_pool_size >= 1
    error_message = "db_pool_size must be at least 1."
  }
}

variable "reserved_connections" {
  type        = number
  description = "Connections on top of the pools: migrations, grants, an operator's session."
  default     = 10
}

variable "max_connections_ceiling" {
  type        = number
  description = "The max_connections flag: the most connections this tier should be asked to hold. Cloud SQL's own default scales with memory (about 100 at 3.75 GB, 400 at 15 GB); each connection costs memory, so raise the tier with this. Changing it restarts the instance."
}

variable "deployer_email" {
  type        = string
  description = "The Cloud Build deployer's service account email; it becomes the migrating IAM database user."
}

variable "extra_flags" {
  type        = map(string)
  description = "More database flags, added to the defaults (a name already set above is an API error)."
  default     = {}
}

variable "labels" {
  type        = map(string)
  description = "Labels on the instance."
  default     = {}
}
