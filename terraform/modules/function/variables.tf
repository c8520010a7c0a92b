variable "project_id" {
  type        = string
  description = "The Google Cloud project that hosts the gateway."
}

variable "region" {
  type        = string
  description = "Region of the function."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of the function's and its service account's names, e.g. gateway-dev."
}

variable "function" {
  type        = string
  description = "The function's folder under functions/: start, history, admin or batch."

  validation {
    condition     = contains(["start", "history", "admin", "batch"], var.function)
    error_message = "function must be one of start, history, admin, batch."
  }
}

variable "description" {
  type        = string
  description = "What the function does."
}

variable "bundle_path" {
  type        = string
  description = "Path of the function's zip built by `python -m deploy.bundle`."
}

variable "source_bucket" {
  type        = string
  description = "Bucket the bundles are uploaded to."
}

variable "build_service_account" {
  type        = string
  description = "Service account (projects/P/serviceAccounts/EMAIL) Cloud Build uses to build the function."
}

variable "runtime" {
  type        = string
  description = "Cloud Run functions runtime."
  default     = "python311"
}

variable "entry_point" {
  type        = string
  description = "The function in main.py that receives requests."
  default     = "handle"
}

variable "scaling" {
  type = object({
    min_instances   = number
    max_instances   = number
    concurrency     = number
    cpu             = string
    memory          = string
    timeout_seconds = number
  })
  description = "Instances, requests per instance (also THREADS), CPU, memory and request timeout."

  validation {
    condition     = var.scaling.min_instances >= 0 && var.scaling.max_instances >= max(1, var.scaling.min_instances)
    error_message = "Need 0 <= min_instances <= max_instances and max_instances >= 1."
  }

  validation {
    condition     = var.scaling.concurrency >= 1 && var.scaling.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }

  # https://cloud.google.com/functions/docs/configuring/concurrency
  validation {
    condition     = var.scaling.concurrency == 1 || tonumber(var.scaling.cpu) >= 1
    error_message = "Concurrency above 1 needs at least 1 vCPU."
  }

  validation {
    condition     = var.scaling.timeout_seconds >= 1 && var.scaling.timeout_seconds <= 3600
    error_message = "timeout_seconds must be between 1 and 3600."
  }
}

variable "environment" {
  type        = map(string)
  description = "Plain environment variables. Never a secret: those go in secret_environment."

  validation {
    condition     = alltrue([for k in keys(var.environment) : length(regexall("KEY|PASSWORD|SECRET|TOKEN|CA_CERT", k)) == 0])
    error_message = "A secret-looking variable (KEY, PASSWORD, SECRET, TOKEN, CA_CERT) must come from secret_environment."
  }
}

variable "secret_environment" {
  type        = map(string)
  description = "Environment variable name -> Secret Manager secret id (latest version)."
  default     = {}
}

variable "network" {
  type        = string
  description = "VPC for Direct VPC egress."
}

variable "subnetwork" {
  type        = string
  description = "Subnet for Direct VPC egress."
}

variable "sql_instance_name" {
  type        = string
  description = "Cloud SQL instance on which the function's IAM database user is created."
}

variable "public" {
  type        = bool
  description = "Grant the invoker role to allUsers (functions behind the load balancer)."
}

variable "labels" {
  type        = map(string)
  description = "Labels on the function."
  default     = {}
}

variable "runtime_roles" {
  type        = list(string)
  description = "Project roles of the function's own service account."
  default = [
    "roles/cloudsql.client",
    "roles/cloudsql.instanceUser",
    "roles/logging.logWriter",
  ]
}

variable "public_invoker_member" {
  type        = string
  description = "Who may invoke a public function: allUsers (the gateway checks its own keys), or \"\" to grant nothing (domain-restricted sharing; docs/deploy.md)."
  default     = "allUsers"
}

variable "iam_settle_seconds" {
  type        = number
  description = "Seconds to wait after the function's grants before its first revision starts."
  default     = 60
}
