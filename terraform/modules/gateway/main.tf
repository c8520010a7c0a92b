# The whole gateway in one project: the composition the environment roots
# call. Each concern is its own module; this file only wires them.

locals {
  name = "gateway-${var.environment}"

  # Behind the load balancer. batch is reached by its push subscription only.
  public_functions = ["start", "history", "admin"]

  descriptions = {
    start   = "Write path: start, append and restart conversations (streaming too)."
    history = "Read path: conversations, entries and batches from the gateway's database."
    admin   = "Control plane: agents, API keys, usage, conversation delete and archive."
    batch   = "Runs batches of conversations delivered by the Pub/Sub push subscription."
  }

  # shared.http.routes.health_path(function)
  health_path_prefix = "/gateway/v1/health/"

  labels = merge(var.labels, { app = "mistral-agents-gateway", environment = var.environment })

  # Plain settings, the same for every function (names are shared/config.py's
  # fields, upper-cased). Never a secret here: see function_secrets.
  function_environment = {
    ENVIRONMENT        = var.environment
    GCP_PROJECT        = var.project_id
    LOG_LEVEL          = var.log_level
    MISTRAL_SERVER_URL = var.mistral_server_url
    CLOUD_SQL_INSTANCE = module.database.connection_name
    DB_IAM_AUTH        = "true"
    DB_NAME            = module.database.database_name
    DB_POOL_SIZE       = tostring(var.db_pool_size)
    REDIS_HOST         = module.redis.host
    REDIS_PORT         = tostring(module.redis.port)
    REDIS_TLS          = "true"
    # Chain checked against the instance's own CA (REDIS_CA_CERT); Memorystore's
    # certificate does not carry the address as an IP SAN (docs/deploy.md).
    REDIS_TLS_CHECK_HOSTNAME = "false"
    # A cold instance's first connections (Direct VPC egress settling, Cloud SQL
    # connector fetching its certificate): bounded, then 503 with Retry-After.
    DB_CONNECT_TIMEOUT_MS    = tostring(var.db_connect_timeout_ms)
    REDIS_CONNECT_TIMEOUT_MS = tostring(var.redis_connect_timeout_ms)
    RATE_LIMIT_REQUESTS      = tostring(var.rate_limit_requests)
    RATE_LIMIT_WINDOW        = tostring(var.rate_limit_window)
    RATE_LIMIT_FAILURE_MODE  = var.rate_limit_failure_mode
  }

  # The batch function's own settings (shared.config.Settings batch_* fields).
  batch_environment = {
    BATCH_CONCURRENCY = tostring(var.batch_concurrency)
    BATCH_MAX_AGE_S   = tostring(var.batch_max_age_s)
    # Leave the calls still in flight (MISTRAL_TIMEOUT_MS, 120 s) time to finish
    # within the function's timeout.
    BATCH_TIME_BUDGET_S = tostring(max(60, var.functions["batch"].timeout_seconds - 140))
    # concurrency deliveries at once, each with BATCH_CONCURRENCY workers, every
    # one of which may hold a Redis connection (rate limit, breaker); past the cap
    # redis-py refuses and the limiter fails open (or closed: a 503 and a retry).
    REDIS_MAX_CONNECTIONS = tostring(var.functions["batch"].concurrency * var.batch_concurrency + 16)
  }

  # Project roles of every function's own service account; the deployer may
  # grant these (and the builder's) and no other role (module cicd).
  function_runtime_roles = [
    "roles/cloudsql.client",
    "roles/cloudsql.instanceUser",
    "roles/logging.logWriter",
  ]

  # A burst of batch_burst_messages deliveries (docs/batches.md): the batch
  # function runs max_instances x concurrency at once, each for at most its
  # timeout; the rest are refused (429) and retried with exponential backoff,
  # and every refusal is a delivery attempt. The last message waits at most
  # burst_drain_seconds; the attempts it spends meanwhile are the retries that
  # fit in that time (the backoff doubles from the minimum to the maximum, then
  # stays there), plus the delivery that runs it.
  batch_parallel       = var.functions["batch"].max_instances * var.functions["batch"].concurrency
  burst_drain_seconds  = ceil(var.batch_burst_messages / local.batch_parallel) * var.functions["batch"].timeout_seconds
  backoff_doublings    = var.batch_minimum_backoff_seconds >= var.batch_maximum_backoff_seconds ? 0 : ceil(log(var.batch_maximum_backoff_seconds / max(var.batch_minimum_backoff_seconds, 1), 2))
  backoff_ramp_seconds = max(var.batch_minimum_backoff_seconds, 1) * (pow(2, local.backoff_doublings) - 1)
  burst_attempts = 1 + (local.burst_drain_seconds <= local.backoff_ramp_seconds
    ? floor(log(local.burst_drain_seconds / max(var.batch_minimum_backoff_seconds, 1) + 1, 2))
  : local.backoff_doublings + floor((local.burst_drain_seconds - local.backoff_ramp_seconds) / var.batch_maximum_backoff_seconds))

  # Environment variable -> Secret Manager secret, read at instance start.
  function_secrets = {
    MISTRAL_API_KEY = module.secrets.secret_ids["mistral_api_key"]
    REDIS_PASSWORD  = module.secrets.secret_ids["redis_auth"]
    REDIS_CA_CERT   = module.secrets.secret_ids["redis_ca"]
  }
}

module "project" {
  source     = "../project"
  project_id = var.project_id
}

module "network" {
  source     = "../network"
  project_id = var.project_id
  region     = var.region
  name       = local.name

  functions_cidr = var.functions_cidr

  depends_on = [module.project]
}

module "cicd" {
  source     = "../cicd"
  project_id = var.project_id
  region     = var.region
  name       = local.name
  network_id = module.network.network_id
  labels     = local.labels

  grantable_roles = local.function_runtime_roles

  depends_on = [module.project, module.network]
}

module "database" {
  source              = "../database"
  project_id          = var.project_id
  region              = var.region
  name                = local.name
  tier                = var.db_tier
  high_availability   = var.db_high_availability
  deletion_protection = var.deletion_protection
  network_id          = module.network.network_id
  services_range_name = module.network.services_range_name
  labels              = local.labels

  db_pool_size              = var.db_pool_size
  max_instances_by_function = { for f, s in var.functions : f => s.max_instances }
  max_connections_ceiling   = var.db_max_connections_ceiling
  deployer_email            = module.cicd.deployer_email

  depends_on = [module.project, module.network]
}

module "redis" {
  source              = "../redis"
  project_id          = var.project_id
  region              = var.region
  name                = local.name
  tier                = var.redis_tier
  memory_size_gb      = var.redis_memory_size_gb
  network_id          = module.network.network_id
  services_range_name = module.network.services_range_name
  labels              = local.labels

  depends_on = [module.project, module.network]
}

module "secrets" {
  source                = "../secrets"
  project_id            = var.project_id
  name                  = local.name
  redis_auth_string     = module.redis.auth_string
  redis_ca_certificates = module.redis.ca_certificates
  labels                = local.labels

  depends_on = [module.project]
}

module "function" {
  source   = "../function"
  for_each = var.functions

  project_id            = var.project_id
  region                = var.region
  name_prefix           = local.name
  function              = each.key
  description           = local.descriptions[each.key]
  bundle_path           = "${var.bundle_dir}/${each.key}.zip"
  source_bucket         = module.cicd.source_bucket
  build_service_account = module.cicd.builder_id
  scaling               = each.value
  environment           = each.key == "batch" ? merge(local.function_environment, local.batch_environment) : local.function_environment
  secret_environment    = local.function_secrets
  network               = module.network.network_name
  subnetwork            = module.network.subnetwork_name
  sql_instance_name     = module.database.instance_name
  public                = contains(local.public_functions, each.key)
  public_invoker_member = var.public_invoker_member
  runtime_roles         = local.function_runtime_roles
  labels                = local.labels

  depends_on = [module.project]
}

module "load_balancer" {
  source     = "../load_balancer"
  project_id = var.project_id
  region     = var.region
  name       = local.name
  domain     = var.domain
  services   = { for f in local.public_functions : f => module.function[f].name }

  waf_preview            = var.waf_preview
  ip_requests_per_minute = var.ip_requests_per_minute

  depends_on = [module.project]
}

module "pubsub" {
  source                = "../pubsub"
  project_id            = var.project_id
  region                = var.region
  name                  = local.name
  batch_service_name    = module.function["batch"].name
  batch_url             = module.function["batch"].uri
  batch_timeout_seconds = var.functions["batch"].timeout_seconds
  pubsub_service_agent  = module.project.pubsub_service_agent
  publishers            = var.batch_publishers
  labels                = local.labels

  max_delivery_attempts   = var.batch_max_delivery_attempts
  minimum_backoff_seconds = var.batch_minimum_backoff_seconds
  maximum_backoff_seconds = var.batch_maximum_backoff_seconds

  depends_on = [module.project]
}

# The batch job sweep: Cloud Scheduler meters the Mistral batch jobs no caller
# read to their end (docs/batches.md, "The batch job sweep").
module "scheduler" {
  source                = "../scheduler"
  project_id            = var.project_id
  region                = var.region
  name                  = local.name
  batch_service_name    = module.function["batch"].name
  batch_url             = module.function["batch"].uri
  batch_timeout_seconds = var.functions["batch"].timeout_seconds
  schedule              = var.batch_job_sweep_schedule

  depends_on = [module.project]
}

module "monitoring" {
  source                        = "../monitoring"
  project_id                    = var.project_id
  name                          = local.name
  metric_prefix                 = local.name
  domain                        = var.domain
  health_paths                  = { for f in local.public_functions : f => "${local.health_path_prefix}${f}" }
  push_subscription_name        = module.pubsub.push_subscription_name
  dead_letter_subscription_name = module.pubsub.dead_letter_subscription_name
  sweep_job_name                = module.scheduler.job_name
  notification_email            = var.notification_email
  latency_p95_threshold_ms      = var.latency_p95_threshold_ms
  metric_propagation_seconds    = var.metric_propagation_seconds

  depends_on = [module.project]
}

# A burst must be worked through before any waiting message runs out of
# delivery attempts; half of them are kept for real failures and for batches
# that need several deliveries (each out-of-time 503 is an attempt too).
check "batch_burst" {
  assert {
    condition     = local.burst_attempts * 2 <= var.batch_max_delivery_attempts
    error_message = "A burst of ${var.batch_burst_messages} batches takes up to ${local.burst_drain_seconds} s at ${local.batch_parallel} deliveries at once; a waiting message may spend ${local.burst_attempts} of its ${var.batch_max_delivery_attempts} delivery attempts on refusals. Raise the batch function's max_instances or concurrency (docs/batches.md)."
  }
}

# The deployer deploys functions that run as these accounts, and updates the
# push subscription and the sweep's scheduler job, whose OIDC tokens are minted
# as the push and sweep accounts, so it must be allowed to act as each of them,
# and as nothing else.
resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each = merge(
    { for f, m in module.function : f => "projects/${var.project_id}/serviceAccounts/${m.service_account_email}" },
    {
      builder    = module.cicd.builder_name
      batch_push = module.pubsub.push_service_account_name
      sweep      = module.scheduler.service_account_name
    },
  )

  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = module.cicd.deployer_member
}

# The smoke test's gateway key, read by Cloud Build (availableSecrets).
resource "google_secret_manager_secret_iam_member" "deployer_smoke_key" {
  project   = var.project_id
  secret_id = module.secrets.secret_ids["smoke_api_key"]
  role      = "roles/secretmanager.secretAccessor"
  member    = module.cicd.deployer_member
}
