variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "region" {
  type        = string
  description = "Region of the functions (and so of their serverless NEGs)."
}

variable "name" {
  type        = string
  description = "Prefix of every load balancer resource's name, e.g. gateway-dev."
}

variable "domain" {
  type        = string
  description = "The gateway's domain; its DNS A record must point at the load balancer's address for the managed certificate to be issued."
}

variable "services" {
  type        = map(string)
  description = "Function (start, history, admin) -> its Cloud Run service name. Each gets a serverless NEG and a backend service."

  validation {
    condition     = alltrue([for f in ["start", "history", "admin"] : contains(keys(var.services), f)])
    error_message = "services must name the start, history and admin functions' services."
  }
}

variable "default_function" {
  type        = string
  description = "Function that answers requests no route rule matches (403 not_exposed, 405 or 404 in the gateway's format)."
  default     = "history"

  validation {
    condition     = contains(["start", "history", "admin"], var.default_function)
    error_message = "default_function must be start, history or admin."
  }
}

variable "log_sample_rate" {
  type        = number
  description = "Share of requests the load balancer logs (0 to 1). The functions log every request themselves."
  default     = 1
}

variable "waf_preview" {
  type        = bool
  description = "Run the SQLi/XSS/LFI/RCE/protocol/scanner WAF rules in preview (log only). Prompts contain code; enforce only after reading the logs."
  default     = true
}

variable "waf_sensitivity" {
  type        = number
  description = "Sensitivity of the preconfigured WAF rules, 1 (fewest false positives) to 4."
  default     = 1

  validation {
    condition     = var.waf_sensitivity >= 1 && var.waf_sensitivity <= 4
    error_message = "waf_sensitivity must be between 1 and 4."
  }
}

variable "ip_requests_per_minute" {
  type        = number
  description = "Requests per minute one client address may send before Cloud Armor bans it."
  default     = 1200
}

variable "ip_ban_duration_sec" {
  type        = number
  description = "How long a banned address is refused (429)."
  default     = 300
}
