variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "name" {
  type        = string
  description = "Prefix of every secret's id, e.g. gateway-dev."
}

variable "redis_auth_string" {
  type        = string
  description = "Memorystore's AUTH string (REDIS_PASSWORD)."
  sensitive   = true
}

variable "redis_ca_certificates" {
  type        = string
  description = "Memorystore's server CA certificates, PEM (REDIS_CA_CERT)."
}

variable "labels" {
  type        = map(string)
  description = "Labels on every secret."
  default     = {}
}
