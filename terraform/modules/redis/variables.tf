variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "region" {
  type        = string
  description = "Region of the instance (the functions' region)."
}

variable "name" {
  type        = string
  description = "Instance name."
}

variable "tier" {
  type        = string
  description = "BASIC (one node, data lost on failure) or STANDARD_HA (replica and automatic failover, about twice the price)."

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.tier)
    error_message = "tier must be BASIC or STANDARD_HA."
  }
}

variable "memory_size_gb" {
  type        = number
  description = "Memory in GB; 1 GB holds millions of rate-limit buckets."
  default     = 1
}

variable "redis_version" {
  type        = string
  description = "Redis version, e.g. REDIS_7_2."
  default     = "REDIS_7_2"
}

variable "network_id" {
  type        = string
  description = "The VPC the instance is reachable from."
}

variable "services_range_name" {
  type        = string
  description = "The private services access range to take the instance's addresses from."
}

variable "labels" {
  type        = map(string)
  description = "Labels on the instance."
  default     = {}
}
