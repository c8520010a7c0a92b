terraform {
  # The pipeline runs hashicorp/terraform:1.11.4 (cloudbuild.yaml); an
  # operator's 1.x from 1.11 on reads and writes the same state.
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # Exact: .terraform.lock.hcl records this version's checksums, and the
      # pipeline's `terraform init -lockfile=readonly` refuses anything else.
      version = "7.31.0"
    }
  }

  # Partial configuration: the bucket comes from `terraform init
  # -backend-config=bucket=<state bucket>` (docs/deploy.md creates it).
  backend "gcs" {
    prefix = "gateway/prod"
  }
}
