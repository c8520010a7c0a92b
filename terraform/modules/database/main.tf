# Cloud SQL for PostgreSQL: private IP only, IAM database authentication,
# backups with point-in-time recovery, deletion protection, and a connection
# limit the functions' pools must fit in (DESIGN 6: pool size x instances x
# functions stays inside max_connections).
#
# The max_connections flag is the fixed ceiling, not the pools' sum: changing
# a flag like this one restarts the instance, and scaling a function must not
# restart the database. The plan fails when the pools outgrow the ceiling;
# raising the ceiling is then a deliberate change (and a restart).

locals {
  # Every instance of every function may hold a full pool at once.
  app_connections = sum([for n in values(var.max_instances_by_function) : n * var.db_pool_size])
  # Migrations, grants and an operator's session come on top of the pools.
  max_connections = local.app_connections + var.reserved_connections
}

# The instance's precondition below fails the plan when the pools could open
# more connections than the tier holds (a refused connection at peak is an
# outage); this check only warns when little headroom is left.
check "connection_headroom" {
  assert {
    condition     = local.max_connections <= 0.8 * var.max_connections_ceiling
    error_message = "The pools may open ${local.app_connections} connections (${local.max_connections} with the reserve), over 80% of the ${var.max_connections_ceiling} this tier is sized for."
  }
}

resource "google_sql_database_instance" "this" {
  #checkov:skip=CKV2_GCP_13:log_duration writes one line per statement on the hot path (cost, noise); slow queries show in Query Insights.
  project             = var.project_id
  name                = var.name
  region              = var.region
  database_version    = var.database_version
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.tier
    edition                     = var.edition
    availability_type           = var.high_availability ? "REGIONAL" : "ZONAL"
    disk_autoresize             = true
    disk_size                   = var.disk_size_gb
    disk_type                   = "PD_SSD"
    deletion_protection_enabled = var.deletion_protection
    user_labels                 = var.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = var.network_id
      allocated_ip_range                            = var.services_range_name
      enable_private_path_for_google_cloud_services = true
      # The Python connector always presents a client certificate.
      ssl_mode = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = var.backup_start_time
      transaction_log_retention_days = var.log_retention_days

      backup_retention_settings {
        retained_backups = var.retained_backups
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 3
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "max_connections"
      value = tostring(var.max_connections_ceiling)
    }

    # Audit and diagnostics: who connected, lock waits, temp files, DDL, errors.
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    # The extension itself is created once by `python -m deploy.grants
    # --bootstrap` (it needs cloudsqlsuperuser; docs/deploy.md section 8).
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }

    dynamic "database_flags" {
      for_each = var.extra_flags
      content {
        name  = database_flags.key
        value = database_flags.value
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.max_connections <= var.max_connections_ceiling
      error_message = "db_pool_size x max instances (${local.app_connections}) + ${var.reserved_connections} reserved = ${local.max_connections} connections, above max_connections_ceiling (${var.max_connections_ceiling}): lower the pools or instances, or raise the tier and the ceiling."
    }
  }
}

resource "google_sql_database" "this" {
  project  = var.project_id
  name     = var.database_name
  instance = google_sql_database_instance.this.name
}

# The deployer's IAM database user runs the migrations and so owns the tables;
# `python -m deploy.grants` then grants the functions' users data access.
resource "google_sql_user" "deployer" {
  project  = var.project_id
  instance = google_sql_database_instance.this.name
  name     = trimsuffix(var.deployer_email, ".gserviceaccount.com")
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}
