variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "region" {
  type        = string
  description = "Region of the functions' subnet."
}

variable "name" {
  type        = string
  description = "Prefix of every network resource's name, e.g. gateway-dev."
}

variable "functions_cidr" {
  type        = string
  description = "Range of the Direct VPC egress subnet. Size it at about twice the instances of all functions together (a /24 holds about 250 addresses)."
  default     = "10.8.0.0/24"

  validation {
    condition     = can(cidrhost(var.functions_cidr, 0)) && tonumber(split("/", var.functions_cidr)[1]) <= 26
    error_message = "functions_cidr must be a valid range of /26 or larger (Direct VPC egress needs room to scale)."
  }
}

variable "services_prefix_length" {
  type        = number
  description = "Prefix length of the private services access range (Cloud SQL, Memorystore, Cloud Build pool)."
  default     = 20

  validation {
    condition     = var.services_prefix_length >= 16 && var.services_prefix_length <= 24
    error_message = "services_prefix_length must be between 16 and 24."
  }
}
