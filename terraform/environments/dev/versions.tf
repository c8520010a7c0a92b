terraform {
  required_version = ">= 1.9"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.21"
    }
  }

  # Partial configuration: the bucket comes from `terraform init
  # -backend-config=bucket=<state bucket>` (docs/deploy.md creates it).
  backend "gcs" {
    prefix = "gateway/dev"
  }
}
