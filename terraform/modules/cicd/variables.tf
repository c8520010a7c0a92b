variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "region" {
  type        = string
  description = "Region of the worker pool and the source bucket."
}

variable "name" {
  type        = string
  description = "Prefix of every resource's name, e.g. gateway-dev."
}

variable "network_id" {
  type        = string
  description = "The VPC the worker pool peers with (through private services access)."
}

variable "worker_machine_type" {
  type        = string
  description = "Machine type of the private pool's workers (billed per build minute)."
  default     = "e2-standard-2"
}

variable "labels" {
  type        = map(string)
  description = "Labels on the bucket."
  default     = {}
}

variable "grantable_roles" {
  type        = list(string)
  description = "Roles, besides the builder's own, the deployer may grant or revoke at project level: the functions' runtime roles."
}

variable "iam_settle_seconds" {
  type        = number
  description = "Seconds to wait after granting the builder its roles before a function build uses them."
  default     = 90
}
