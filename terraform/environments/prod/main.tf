provider "google" {
  project = var.project_id
  region  = var.region
}

module "gateway" {
  source = "../../modules/gateway"

  project_id         = var.project_id
  region             = var.region
  environment        = var.environment
  domain             = var.domain
  notification_email = var.notification_email
  bundle_dir         = var.bundle_dir

  functions                  = var.functions
  db_tier                    = var.db_tier
  db_high_availability       = var.db_high_availability
  db_max_connections_ceiling = var.db_max_connections_ceiling
  db_pool_size               = var.db_pool_size
  redis_tier                 = var.redis_tier
  redis_memory_size_gb       = var.redis_memory_size_gb
  waf_preview                = var.waf_preview
  batch_publishers           = var.batch_publishers
  public_invoker_member      = var.public_invoker_member
  labels                     = var.labels
}
