# Memorystore for Redis: AUTH and in-transit TLS, reached over private
# services access. TLS is chosen at creation and uses the instance's own CA,
# whose server certificates rotate: the gateway reads the CA (all current
# certificates) from Secret Manager and reconnects with backoff.

resource "google_redis_instance" "this" {
  project        = var.project_id
  name           = var.name
  region         = var.region
  tier           = var.tier
  memory_size_gb = var.memory_size_gb
  redis_version  = var.redis_version
  labels         = var.labels

  authorized_network = var.network_id
  connect_mode       = "PRIVATE_SERVICE_ACCESS"
  reserved_ip_range  = var.services_range_name

  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  # Rate-limit buckets and breaker state are cheap to lose; evict the oldest
  # keys with a TTL rather than refuse writes when memory is full.
  redis_configs = {
    "maxmemory-policy" = "volatile-lru"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 3
        minutes = 0
      }
    }
  }
}
