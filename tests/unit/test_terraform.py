"""Offline checks of terraform/: the wiring, the security settings, and the URL map.

Providers cannot be downloaded here, so nothing is planned: every `.tf` file is
parsed with python-hcl2 and the tests assert what the configuration says.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2.utils import SerializationOptions

from deploy import routes as lb
from shared.config import Settings
from shared.http.routes import FUNCTIONS, ROUTES, Route, health_path, match
from shared.observability import ACCESS_LINE_FIELDS

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
ENVIRONMENTS = ("dev", "prod")

# Fields of the other structured events: circuit_transition and batch_finished.
EVENT_FIELDS = frozenset({"state", "batch_id", "items_total", "items_failed"})
LOG_FIELDS = ACCESS_LINE_FIELDS | EVENT_FIELDS

# An environment variable whose name looks like this carries a secret.
SECRET_NAME = re.compile(r"KEY|PASSWORD|SECRET|TOKEN|CA_CERT")
REQUIRED_SECRETS = {"MISTRAL_API_KEY", "REDIS_PASSWORD", "REDIS_CA_CERT"}
REQUIRED_ALERTS = {
    "error_rate",
    "latency_p95",
    "circuit_open",
    "rate_limited_spike",
    "batch_failures",
    "dead_letters",
    "uptime",
}

_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)


@cache
def config(relative: str) -> dict[str, Any]:
    """Every block of one Terraform directory, merged across its .tf files."""
    merged: dict[str, Any] = {"resource": {}, "locals": {}, "variable": {}, "module": {}}
    for path in sorted((TERRAFORM / relative).glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle, serialization_options=_OPTIONS)
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                merged["resource"].setdefault(rtype, {}).update(named)
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
        for kind in ("variable", "module", "output"):
            for block in parsed.get(kind, []):
                merged.setdefault(kind, {}).update(block)
    return merged


def resource(relative: str, rtype: str, name: str) -> dict[str, Any]:
    return config(relative)["resource"][rtype][name]


def one(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(blocks) == 1, blocks
    return blocks[0]


def generated_rules() -> list[dict[str, Any]]:
    path = TERRAFORM / "modules" / "load_balancer" / "routes.auto.tf.json"
    return json.loads(path.read_text())["locals"]["gateway_route_rules"]


def _template_regex(template: str) -> re.Pattern[str]:
    """A URL map path template as a regex: `*` is one segment, `**` the rest."""
    pattern = ""
    for piece in re.split(r"(\{[a-z_]+=\*\*?\})", template):
        if piece.endswith("=**}"):
            pattern += ".*"
        elif piece.endswith("=*}"):
            pattern += "[^/]+"
        else:
            pattern += re.escape(piece)
    return re.compile(pattern)


def route_through_url_map(rules: list[dict[str, Any]], method: str, path: str) -> dict | None:
    """What the load balancer does: the lowest-priority rule whose matches all hold."""
    for rule in sorted(rules, key=lambda r: r["priority"]):
        if rule["method"] != method:
            continue
        if rule["full_path_match"] is not None and rule["full_path_match"] == path:
            return rule
        template = rule["path_template_match"]
        if template is not None and _template_regex(template).fullmatch(path):
            return rule
    return None


def _untemplate(rule: dict[str, Any]) -> str:
    if rule["full_path_match"] is not None:
        return rule["full_path_match"]
    return re.sub(r"\{([a-z_]+)=\*\}", r"{\1}", rule["path_template_match"])


def _sample_path(route: Route, value: str) -> str:
    return re.sub(r"\{[a-z_]+\}", value, route.template)


def test_route_file_is_what_the_route_table_generates():
    """routes.auto.tf.json is byte-for-byte what `python -m deploy.routes` writes now."""
    assert lb.OUTPUT.read_text() == lb.render(), "stale: run `python -m deploy.routes`"


def test_url_map_rules_equal_the_public_route_table():
    """Every public route of a load-balanced function is one rule, and nothing else is."""
    rules = {(r["method"], _untemplate(r), r["function"]) for r in generated_rules()}
    expected = {(r.method, r.template, r.function) for r in lb.exposed_routes()}
    assert rules == expected
    assert len(generated_rules()) == len(expected)


def test_only_batch_health_is_left_out_of_the_load_balancer():
    """A public route is dropped only when it is the health route of a function off the LB."""
    exposed = set(lb.exposed_routes())
    dropped = {(r.method, r.template) for r in ROUTES if r.public and r not in exposed}
    off_lb = [f for f in FUNCTIONS if f not in lb.PUBLIC_FUNCTIONS]
    assert dropped <= {("GET", health_path(f)) for f in off_lb}
    assert all(r.public for r in exposed)
    assert not any(r.function == "batch" for r in exposed)


def test_route_priorities_are_unique():
    """The load balancer rejects a path matcher with two rules of one priority."""
    priorities = [r["priority"] for r in generated_rules()]
    assert len(priorities) == len(set(priorities))
    assert all(isinstance(p, int) and 0 <= p < 2**31 for p in priorities)


def test_each_rule_matches_one_method_and_one_path():
    """A rule has a :method match and exactly one of full_path_match / path_template_match."""
    for rule in generated_rules():
        assert rule["method"] in {"GET", "POST", "PUT", "PATCH", "DELETE"}
        assert (rule["full_path_match"] is None) != (rule["path_template_match"] is None), rule


@pytest.mark.parametrize(
    "value", ["conv_0123", "pages", "versions", "aliases", "events", "entries"]
)
def test_url_map_sends_every_route_where_the_gateway_router_would(value):
    """Simulating the URL map on each route's path picks the route `routes.match` picks."""
    rules = generated_rules()
    exposed = tuple(lb.exposed_routes())
    for route in exposed:
        path = _sample_path(route, value)
        expected = match(route.method, path, exposed).route
        assert expected is not None
        rule = route_through_url_map(rules, route.method, path)
        assert rule is not None, f"{route.method} {path} falls to the default backend"
        assert (rule["operation"], rule["function"]) == (expected.operation, expected.function)


def test_every_route_reaches_its_own_function():
    """With an id that is no fixed segment, each route's request reaches that route's function."""
    rules = generated_rules()
    for route in lb.exposed_routes():
        rule = route_through_url_map(rules, route.method, _sample_path(route, "conv_0123"))
        assert rule is not None
        assert (rule["operation"], rule["function"]) == (route.operation, route.function)


def test_unrouted_requests_fall_to_the_default_backend():
    """A method the table lacks, and the batch push path, match no rule."""
    rules = generated_rules()
    assert route_through_url_map(rules, "PUT", "/v1/conversations") is None
    assert route_through_url_map(rules, "POST", "/gateway/v1/batches/events") is None
    assert route_through_url_map(rules, "GET", health_path("batch")) is None


def test_url_map_builds_its_route_rules_from_the_generated_table():
    """The URL map's only path matcher holds route rules made from local.gateway_route_rules."""
    url_map = resource("modules/load_balancer", "google_compute_url_map", "https")
    default = "${google_compute_backend_service.this[var.default_function].id}"
    assert url_map["default_service"] == default
    matcher = one(url_map["path_matcher"])
    assert "path_rule" not in matcher
    assert matcher["default_service"] == default
    dynamic = one(matcher["dynamic"])["route_rules"]
    assert dynamic["for_each"] == "${local.gateway_route_rules}"
    content = one(dynamic["content"])
    assert content["priority"] == "${route_rules.value.priority}"
    assert content["service"] == (
        "${google_compute_backend_service.this[route_rules.value.function].id}"
    )
    match_rules = one(content["match_rules"])
    assert match_rules["full_path_match"] == "${route_rules.value.full_path_match}"
    assert match_rules["path_template_match"] == "${route_rules.value.path_template_match}"
    header = one(match_rules["header_matches"])
    assert header == {"header_name": ":method", "exact_match": "${route_rules.value.method}"}


def test_load_balancer_is_the_method_aware_kind():
    """Backends and forwarding rules are EXTERNAL_MANAGED, the kind that routes by method."""
    res = config("modules/load_balancer")["resource"]
    for backend in res["google_compute_backend_service"].values():
        assert backend["load_balancing_scheme"] == "EXTERNAL_MANAGED"
        assert backend["security_policy"] == "${google_compute_security_policy.this.id}"
    for rule in res["google_compute_global_forwarding_rule"].values():
        assert rule["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    redirect = one(res["google_compute_url_map"]["redirect"]["default_url_redirect"])
    assert redirect["https_redirect"] is True


def test_every_public_function_has_a_serverless_neg_and_a_backend():
    """One NEG (cloud_run block) and one backend per function the gateway puts behind the LB."""
    res = config("modules/load_balancer")["resource"]
    neg = res["google_compute_region_network_endpoint_group"]["this"]
    backend = res["google_compute_backend_service"]["this"]
    assert neg["for_each"] == backend["for_each"] == "${var.services}"
    assert neg["network_endpoint_type"] == "SERVERLESS"
    assert one(neg["cloud_run"])["service"] == "${each.value}"
    assert "cloud_function" not in neg
    group = one(backend["backend"])["group"]
    assert group == "${google_compute_region_network_endpoint_group.this[each.key].id}"
    gateway = config("modules/gateway")
    assert gateway["locals"]["public_functions"] == list(lb.PUBLIC_FUNCTIONS)
    services = gateway["module"]["load_balancer"]["services"]
    assert "for f in local.public_functions" in services
    assert "module.function[f].name" in services
    assert {r["function"] for r in generated_rules()} <= set(lb.PUBLIC_FUNCTIONS)


def test_every_function_has_its_own_service_account():
    """The function module makes one account per function and runs the function as it."""
    fn = config("modules/function")
    account = resource("modules/function", "google_service_account", "this")
    assert "${var.function}" in account["account_id"]
    function = resource("modules/function", "google_cloudfunctions2_function", "this")
    service = one(function["service_config"])
    assert service["service_account_email"] == "${google_service_account.this.email}"
    roles = fn["variable"]["runtime_roles"]["default"]
    assert roles == config("modules/gateway")["locals"]["function_runtime_roles"]
    assert config("modules/gateway")["module"]["function"]["runtime_roles"] == (
        "${local.function_runtime_roles}"
    )
    runtime = resource("modules/function", "google_project_iam_member", "runtime")
    assert runtime["for_each"] == "${toset(var.runtime_roles)}"
    assert "roles/cloudsql.client" in roles
    assert "roles/cloudsql.instanceUser" in roles
    assert not any(r in roles for r in ("roles/owner", "roles/editor"))
    assert config("modules/gateway")["module"]["function"]["for_each"] == "${var.functions}"
    for env in ENVIRONMENTS:
        defaults = config(f"environments/{env}")["variable"]["functions"]["default"]
        assert set(defaults) == set(FUNCTIONS), env


def test_function_secrets_are_granted_one_by_one():
    """Each function may read exactly the secrets it is given, not every secret in the project."""
    grant = resource("modules/function", "google_secret_manager_secret_iam_member", "this")
    assert grant["for_each"] == "${var.secret_environment}"
    assert grant["secret_id"] == "${each.value}"
    assert grant["role"] == "roles/secretmanager.secretAccessor"


def _plain_environment_names() -> set[str]:
    """Every name that can reach a function's plain environment_variables block."""
    function = resource("modules/function", "google_cloudfunctions2_function", "this")
    expression = one(function["service_config"])["environment_variables"]
    # Only these two inputs feed it; anything else would escape this check.
    assert expression == "${merge(var.environment, local.runtime_environment)}"
    names = set(config("modules/function")["locals"]["runtime_environment"])
    environment = config("modules/gateway")["module"]["function"]["environment"]
    assert environment == (
        '${each.key == "batch" ? merge(local.function_environment, local.batch_environment)'
        " : local.function_environment}"
    )
    gateway_locals = config("modules/gateway")["locals"]
    names |= set(gateway_locals["function_environment"]) | set(gateway_locals["batch_environment"])
    return names


def test_secret_pattern_catches_the_gateways_secrets():
    """The pattern this file uses flags every secret setting of shared/config.py."""
    for name in (*REQUIRED_SECRETS, "DB_PASSWORD", "DATABASE_URL_TOKEN"):
        assert SECRET_NAME.search(name), name
    assert not SECRET_NAME.search("REDIS_HOST")


def test_no_secret_in_a_plain_environment_variable():
    """Secret-looking names never appear in environment_variables."""
    names = _plain_environment_names()
    assert {"CLOUD_SQL_INSTANCE", "REDIS_HOST", "THREADS"} <= names
    assert not {n for n in names if SECRET_NAME.search(n)}


def test_secrets_come_from_secret_manager():
    """The Mistral key, Redis AUTH string and Redis CA reach the functions as secret env vars."""
    function = resource("modules/function", "google_cloudfunctions2_function", "this")
    dynamic = one(one(function["service_config"])["dynamic"])["secret_environment_variables"]
    assert dynamic["for_each"] == "${var.secret_environment}"
    secrets = config("modules/gateway")["locals"]["function_secrets"]
    assert set(secrets) == REQUIRED_SECRETS
    assert "DB_PASSWORD" not in _plain_environment_names() | set(secrets)


def test_threads_equal_request_concurrency():
    """THREADS and max_instance_request_concurrency come from the same setting."""
    function = resource("modules/function", "google_cloudfunctions2_function", "this")
    service = one(function["service_config"])
    assert service["max_instance_request_concurrency"] == "${var.scaling.concurrency}"
    threads = config("modules/function")["locals"]["runtime_environment"]["THREADS"]
    assert threads == "${tostring(var.scaling.concurrency)}"
    for env in ENVIRONMENTS:
        for name, scaling in config(f"environments/{env}")["variable"]["functions"][
            "default"
        ].items():
            assert scaling["concurrency"] == 1 or float(scaling["cpu"]) >= 1, (env, name)


def test_functions_sit_behind_the_load_balancer_with_private_egress():
    """Ingress internal-and-GCLB (batch: internal only); private-range egress; batch not public."""
    function = resource("modules/function", "google_cloudfunctions2_function", "this")
    service = one(function["service_config"])
    assert service["ingress_settings"] == (
        '${var.public ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_INTERNAL_ONLY"}'
    )
    assert "batch" not in config("modules/gateway")["locals"]["public_functions"]
    assert service["direct_vpc_egress"] == "VPC_EGRESS_PRIVATE_RANGES_ONLY"
    assert one(function["build_config"])["runtime"] == "${var.runtime}"
    assert config("modules/function")["variable"]["runtime"]["default"] == "python311"
    assert config("modules/function")["variable"]["entry_point"]["default"] == "handle"
    public = resource("modules/function", "google_cloud_run_v2_service_iam_member", "public")
    assert public["count"] == '${var.public && var.public_invoker_member != "" ? 1 : 0}'
    assert public["member"] == "${var.public_invoker_member}"
    call = config("modules/gateway")["module"]["function"]
    assert call["public"] == "${contains(local.public_functions, each.key)}"


def test_function_source_is_named_after_the_bundle_hash():
    """A changed bundle is a new object (so a redeploy); the same bundle is the same object."""
    source = resource("modules/function", "google_storage_bucket_object", "source")
    assert "filesha256(var.bundle_path)" in source["name"]
    assert source["source"] == "${var.bundle_path}"


def test_cloud_sql_is_private_with_iam_auth_backups_and_protection():
    """No public IPv4, IAM database auth, backups with PITR, deletion protection on."""
    instance = resource("modules/database", "google_sql_database_instance", "this")
    settings = one(instance["settings"])
    ip = one(settings["ip_configuration"])
    assert ip["ipv4_enabled"] is False
    assert ip["private_network"] == "${var.network_id}"
    assert "authorized_networks" not in ip
    flags = {f["name"]: f["value"] for f in settings["database_flags"]}
    assert flags["cloudsql.iam_authentication"] == "on"
    assert flags["max_connections"] == "${tostring(var.max_connections_ceiling)}"
    backup = one(settings["backup_configuration"])
    assert backup["enabled"] is True
    assert backup["point_in_time_recovery_enabled"] is True
    assert instance["deletion_protection"] == "${var.deletion_protection}"
    assert settings["deletion_protection_enabled"] == "${var.deletion_protection}"
    variables = config("modules/database")["variable"]
    assert variables["deletion_protection"]["default"] is True
    assert variables["database_version"]["default"].startswith("POSTGRES_")


def test_function_database_users_are_their_service_accounts():
    """One CLOUD_IAM_SERVICE_ACCOUNT user per function, and DB_USER is that user."""
    user = resource("modules/function", "google_sql_user", "this")
    assert user["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert user["name"] == "${local.db_user}"
    locals_ = config("modules/function")["locals"]
    assert 'trimsuffix(google_service_account.this.email, ".gserviceaccount.com")' in (
        locals_["db_user"].replace('\\"', '"')
    )
    assert locals_["runtime_environment"]["DB_USER"] == "${local.db_user}"
    env = config("modules/gateway")["locals"]["function_environment"]
    assert env["DB_IAM_AUTH"] == "true"
    assert env["CLOUD_SQL_INSTANCE"] == "${module.database.connection_name}"
    assert env["DB_POOL_SIZE"] == "${tostring(var.db_pool_size)}"


def test_max_connections_is_derived_from_the_pools():
    """max_connections = pool x instances summed over functions + reserve, and a plan checks it."""
    locals_ = config("modules/database")["locals"]
    assert "var.max_instances_by_function" in locals_["app_connections"]
    assert "var.db_pool_size" in locals_["app_connections"]
    assert "local.app_connections" in locals_["max_connections"]
    instance = resource("modules/database", "google_sql_database_instance", "this")
    precondition = one(one(instance["lifecycle"])["precondition"])
    assert precondition["condition"] == "${local.max_connections <= var.max_connections_ceiling}"
    call = config("modules/gateway")["module"]["database"]
    assert "s.max_instances" in call["max_instances_by_function"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_defaults_fit_the_database(env):
    """Each environment's pools, at full scale-out, fit its Cloud SQL connection ceiling."""
    variables = config(f"environments/{env}")["variable"]
    reserve = config("modules/database")["variable"]["reserved_connections"]["default"]
    functions = variables["functions"]["default"]
    needed = sum(f["max_instances"] for f in functions.values())
    needed = needed * variables["db_pool_size"]["default"] + reserve
    assert needed <= variables["db_max_connections_ceiling"]["default"]


def test_redis_has_auth_and_tls():
    """Memorystore with AUTH, server-authenticated TLS, and the port read from the instance."""
    redis = resource("modules/redis", "google_redis_instance", "this")
    assert redis["auth_enabled"] is True
    assert redis["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
    env = config("modules/gateway")["locals"]["function_environment"]
    assert env["REDIS_TLS"] == "true"
    assert env["REDIS_TLS_CHECK_HOSTNAME"] == "false"
    assert env["DB_CONNECT_TIMEOUT_MS"] == "${tostring(var.db_connect_timeout_ms)}"
    assert env["REDIS_CONNECT_TIMEOUT_MS"] == "${tostring(var.redis_connect_timeout_ms)}"
    settings = Settings.from_env(
        {
            "REDIS_TLS": env["REDIS_TLS"],
            "REDIS_TLS_CHECK_HOSTNAME": env["REDIS_TLS_CHECK_HOSTNAME"],
            "DB_CONNECT_TIMEOUT_MS": str(
                config("modules/gateway")["variable"]["db_connect_timeout_ms"]["default"]
            ),
            "REDIS_CONNECT_TIMEOUT_MS": str(
                config("modules/gateway")["variable"]["redis_connect_timeout_ms"]["default"]
            ),
        }
    )
    assert settings.redis_tls
    assert not settings.redis_tls_check_hostname
    assert env["REDIS_HOST"] == "${module.redis.host}"
    assert env["REDIS_PORT"] == "${tostring(module.redis.port)}"


def test_batch_subscription_retries_dead_letters_and_outlasts_the_function():
    """Push with OIDC, exponential retry, a dead-letter topic, ack deadline >= batch timeout."""
    sub = resource("modules/pubsub", "google_pubsub_subscription", "batch_push")
    variables = config("modules/pubsub")["variable"]
    retry = one(sub["retry_policy"])
    assert retry["minimum_backoff"]
    assert retry["maximum_backoff"]
    dead = one(sub["dead_letter_policy"])
    assert dead["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert 5 <= variables["max_delivery_attempts"]["default"] <= 100
    push = one(sub["push_config"])
    oidc = one(push["oidc_token"])
    assert oidc["service_account_email"] == "${google_service_account.push.email}"
    assert push["push_endpoint"] == "${var.batch_url}${var.push_path}"
    ack = variables["ack_deadline_seconds"]["default"]
    assert sub["ack_deadline_seconds"] == "${var.ack_deadline_seconds}"
    for env in ENVIRONMENTS:
        batch = config(f"environments/{env}")["variable"]["functions"]["default"]["batch"]
        assert batch["timeout_seconds"] <= 540
        assert ack >= batch["timeout_seconds"], env


def test_push_path_is_the_batch_route():
    """The subscription pushes to the batch function's non-public route in shared.http.routes."""
    (push_route,) = [r for r in ROUTES if r.operation == "gateway.batches.deliver"]
    assert not push_route.public
    assert push_route.function == "batch"
    assert config("modules/pubsub")["variable"]["push_path"]["default"] == push_route.template


def test_the_sweep_is_scheduled_on_the_batch_functions_private_route_with_oidc():
    """Cloud Scheduler POSTs to the sweep route with an OIDC token of its own identity,
    which may invoke the batch function only; no retry; it waits the function's timeout;
    a failed attempt alerts (at most hourly); the module is called with the batch
    function's URL and timeout."""
    (route,) = [r for r in ROUTES if r.operation == "gateway.batch_jobs.sweep"]
    assert (route.function, route.method, route.public) == ("batch", "POST", False)
    variables = config("modules/scheduler")["variable"]
    assert variables["sweep_path"]["default"] == route.template
    job = resource("modules/scheduler", "google_cloud_scheduler_job", "sweep")
    target = one(job["http_target"])
    assert target["http_method"] == "POST"
    assert target["uri"] == "${var.batch_url}${var.sweep_path}"
    oidc = one(target["oidc_token"])
    assert oidc["service_account_email"] == "${google_service_account.sweep.email}"
    assert oidc["audience"] == "${var.batch_url}"
    assert "headers" not in target  # no gateway key stored in the job
    assert one(job["retry_config"])["retry_count"] == 0
    assert job["attempt_deadline"] == "${var.batch_timeout_seconds}s"
    invoker = resource(
        "modules/scheduler", "google_cloud_run_v2_service_iam_member", "sweep_invoker"
    )
    assert invoker["name"] == "${var.batch_service_name}"
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "${google_service_account.sweep.member}"
    alert = resource("modules/monitoring", "google_monitoring_alert_policy", "sweep_failed")
    log_filter = one(one(alert["conditions"])["condition_matched_log"])["filter"]
    assert 'resource.type="cloud_scheduler_job"' in log_filter
    assert 'resource.labels.job_id="${var.sweep_job_name}"' in log_filter
    assert "severity>=ERROR" in log_filter
    assert one(one(alert["alert_strategy"])["notification_rate_limit"])["period"] == "3600s"
    monitoring = config("modules/gateway")["module"]["monitoring"]
    assert monitoring["sweep_job_name"] == "${module.scheduler.job_name}"
    assert config("modules/scheduler")["output"]["job_name"]["value"] == (
        "${google_cloud_scheduler_job.sweep.name}"
    )
    call = config("modules/gateway")["module"]["scheduler"]
    assert call["batch_url"] == '${module.function["batch"].uri}'
    assert call["batch_timeout_seconds"] == '${var.functions["batch"].timeout_seconds}'
    for env in ENVIRONMENTS:
        batch = config(f"environments/{env}")["variable"]["functions"]["default"]["batch"]
        assert 15 <= batch["timeout_seconds"] <= 1800, env


def test_pubsub_service_agent_can_dead_letter():
    """The service agent publishes to the dead-letter topic and subscribes on the source."""
    res = config("modules/pubsub")["resource"]
    publisher = res["google_pubsub_topic_iam_member"]["dead_letter_publisher"]
    assert publisher["topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert publisher["role"] == "roles/pubsub.publisher"
    subscriber = res["google_pubsub_subscription_iam_member"]["dead_letter_subscriber"]
    assert subscriber["subscription"] == "${google_pubsub_subscription.batch_push.id}"
    assert subscriber["role"] == "roles/pubsub.subscriber"
    invoker = res["google_cloud_run_v2_service_iam_member"]["push_invoker"]
    assert invoker["name"] == "${var.batch_service_name}"
    assert invoker["role"] == "roles/run.invoker"


def test_every_required_alert_exists():
    """Error rate, p95 latency, circuit open, 429 spike, batch failures, dead letters, uptime."""
    alerts = config("modules/monitoring")["resource"]["google_monitoring_alert_policy"]
    assert set(alerts) >= REQUIRED_ALERTS
    for name, alert in alerts.items():
        assert alert["notification_channels"] == "${local.channels}", name
    dead = one(one(alerts["dead_letters"]["conditions"])["condition_threshold"])
    assert "subscription/dead_letter_message_count" in dead["filter"]
    uptime = one(alerts["uptime"]["dynamic"])["conditions"]
    assert uptime["for_each"] == "${google_monitoring_uptime_check_config.health}"


def test_uptime_checks_hit_each_public_health_route():
    """The uptime checks go through the load balancer to each public function's health route."""
    check = resource("modules/monitoring", "google_monitoring_uptime_check_config", "health")
    assert check["for_each"] == "${var.health_paths}"
    assert one(check["monitored_resource"])["labels"]["host"] == "${var.domain}"
    gateway = config("modules/gateway")
    prefix = gateway["locals"]["health_path_prefix"]
    assert all(prefix + f == health_path(f) for f in FUNCTIONS)
    paths = gateway["module"]["monitoring"]["health_paths"]
    assert "local.public_functions" in paths
    assert "local.health_path_prefix" in paths


def _expand_locals(text: str, locals_: dict[str, Any], each_key: str | None) -> str:
    """Replace ${local.x}, ${local.x.y} and ${local.x[each.key]} with their text."""

    def substitute(found: re.Match[str]) -> str:
        name, attr, indexed = found.groups()
        value = locals_[name]
        if attr:
            value = value[attr]
        elif indexed:
            value = value[each_key]
        return _expand_locals(value, locals_, each_key)

    return re.sub(r"\$\{local\.(\w+)(?:\.(\w+)|(\[each\.key\]))?\}", substitute, text)


def log_metric_fields() -> set[str]:
    """Every jsonPayload field any log-based metric reads (filters and extractors)."""
    mod = config("modules/monitoring")
    fields: set[str] = set()
    for name, metric in mod["resource"]["google_logging_metric"].items():
        texts = [metric["filter"], metric.get("value_extractor", "")]
        texts += list(metric.get("label_extractors", {}).values())
        keys = metric["for_each"].keys() if isinstance(metric.get("for_each"), dict) else [None]
        for each_key in keys:
            for text in texts:
                try:
                    expanded = _expand_locals(text, mod["locals"], each_key)
                except KeyError as exc:
                    pytest.fail(f"metric {name} names an unknown log field {exc}")
                fields |= set(re.findall(r"jsonPayload\.([A-Za-z_]\w*)", expanded))
    return fields


def test_log_metrics_read_only_documented_fields():
    """Every jsonPayload field a log-based metric uses is one the gateway writes."""
    fields = log_metric_fields()
    # The extraction finds what the metrics are known to use (it is not vacuous).
    assert {"event", "status", "latency_ms", "tokens_in", "rate_limit", "items_failed"} <= fields
    assert fields <= LOG_FIELDS, fields - LOG_FIELDS


def test_log_field_map_is_the_one_place_for_field_names():
    """The monitoring map names each field jsonPayload.<its key>, documented fields only."""
    field_map = config("modules/monitoring")["locals"]["log_field"]
    assert {k: f"jsonPayload.{k}" for k in field_map} == field_map
    assert set(field_map) <= LOG_FIELDS
    for metric in config("modules/monitoring")["resource"]["google_logging_metric"].values():
        texts = [metric["filter"], metric.get("value_extractor", "")]
        texts += list(metric.get("label_extractors", {}).values())
        assert not any("jsonPayload." in t for t in texts), "name fields via local.log_field"


def test_every_variable_is_typed_and_described():
    """Every variable of every module and environment has a type and a description."""
    directories = [p.relative_to(TERRAFORM) for p in TERRAFORM.glob("*/*") if p.is_dir()]
    assert len(directories) >= 10
    for directory in directories:
        for name, variable in config(str(directory)).get("variable", {}).items():
            assert variable.get("type"), f"{directory}: variable {name} has no type"
            assert variable.get("description"), f"{directory}: variable {name} has no description"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_root_is_thin_and_pinned(env):
    """A root configures the provider and state, and calls the gateway module; nothing else."""
    root = config(f"environments/{env}")
    assert not root["resource"]
    assert set(root["module"]) == {"gateway"}
    assert root["module"]["gateway"]["source"] == "../../modules/gateway"
    assert root["variable"]["environment"]["default"] == env
    text = (TERRAFORM / "environments" / env / "versions.tf").read_text()
    assert re.search(r'backend "gcs"', text)
    assert re.search(r'version\s*=\s*"7\.\d+\.\d+"', text), "the provider is pinned exactly"
    assert (TERRAFORM / "environments" / env / "terraform.tfvars.example").is_file()


def test_terraform_fmt_is_clean():
    """`terraform fmt -check -recursive` finds nothing to rewrite."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("the terraform binary is not installed")
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"not formatted: {result.stdout.strip()}"


# --- First deploy on an empty project (issue 20) --------------------------------------------

# The API each resource type needs (the first word after google_ decides).
API_FOR_RESOURCE = {
    "google_cloudfunctions2_function": {
        "cloudfunctions.googleapis.com",
        "cloudbuild.googleapis.com",
        "run.googleapis.com",
        "artifactregistry.googleapis.com",
    },
    "google_cloud_run_v2_service_iam_member": {"run.googleapis.com"},
    "google_sql_": {"sqladmin.googleapis.com"},
    "google_redis_": {"redis.googleapis.com"},
    "google_pubsub_": {"pubsub.googleapis.com"},
    "google_cloud_scheduler_": {"cloudscheduler.googleapis.com"},
    "google_secret_manager_": {"secretmanager.googleapis.com"},
    "google_compute_": {"compute.googleapis.com"},
    "google_service_networking_": {"servicenetworking.googleapis.com"},
    "google_monitoring_": {"monitoring.googleapis.com"},
    "google_logging_": {"logging.googleapis.com"},
    "google_cloudbuild_": {"cloudbuild.googleapis.com"},
    "google_storage_": {"storage.googleapis.com"},
    "google_service_account": {"iam.googleapis.com"},
    "google_project_iam_member": {"cloudresourcemanager.googleapis.com"},
}

MODULES = sorted(p.name for p in (TERRAFORM / "modules").iterdir() if p.is_dir())


def sleep_of(res: dict[str, Any]) -> str:
    """The local-exec command of a terraform_data wait."""
    (provisioner,) = res["provisioner"]
    return provisioner["local-exec"]["command"]


def test_every_module_waits_for_api_enablement():
    """Every module the gateway calls, and so every resource, depends on module.project."""
    calls = config("modules/gateway")["module"]
    assert set(calls) == set(MODULES) - {"gateway"}
    for name, call in calls.items():
        if name != "project":
            assert "${module.project}" in call.get("depends_on", []), name
    outputs = config("modules/project")["output"]
    assert outputs["enabled_services"]["depends_on"] == ["${terraform_data.services_settled}"]
    settle = resource("modules/project", "terraform_data", "services_settled")
    assert settle["depends_on"] == ["${google_project_service.this}"]
    assert sleep_of(settle) == "sleep ${var.settle_seconds}"


def test_every_api_a_resource_needs_is_enabled_and_no_other():
    """Each resource type's API is in the project's list; Eventarc (unused) is not."""
    services = set(config("modules/project")["variable"]["services"]["default"])
    needed = {"cloudresourcemanager.googleapis.com"}
    for module in MODULES:
        for rtype in config(f"modules/{module}")["resource"]:
            if not rtype.startswith("google_") or rtype == "google_project_service":
                continue
            apis = [a for prefix, a in API_FOR_RESOURCE.items() if rtype.startswith(prefix)]
            assert apis, f"{rtype}: which API does it need?"
            needed |= set().union(*apis)
    assert needed <= services, needed - services
    assert "eventarc.googleapis.com" not in services


def test_function_builds_can_read_their_sources():
    """The builder reads sources project-wide (gcf-v2-sources bucket); builds wait for it."""
    cicd = config("modules/cicd")
    assert "roles/storage.objectViewer" in cicd["locals"]["builder_roles"]
    grant = resource("modules/cicd", "google_project_iam_member", "builder")
    assert grant["for_each"] == "${toset(local.builder_roles)}"
    assert grant["member"] == "${google_service_account.builder.member}"
    assert "google_storage_bucket_iam_member" not in cicd["resource"]
    settled = resource("modules/cicd", "terraform_data", "builder_iam_settled")
    assert settled["depends_on"] == ["${google_project_iam_member.builder}"]
    assert sleep_of(settled) == "sleep ${var.iam_settle_seconds}"
    assert cicd["variable"]["iam_settle_seconds"]["default"] >= 60
    assert cicd["output"]["builder_id"]["depends_on"] == ["${terraform_data.builder_iam_settled}"]
    function = resource("modules/function", "google_cloudfunctions2_function", "this")
    assert one(function["build_config"])["service_account"] == "${var.build_service_account}"
    call = config("modules/gateway")["module"]["function"]
    assert call["build_service_account"] == "${module.cicd.builder_id}"


def test_functions_start_after_their_grants_have_propagated():
    """A first revision waits for its IAM, secret access and database user, then a pause."""
    function = resource("modules/function", "google_cloudfunctions2_function", "this")
    assert function["depends_on"] == ["${terraform_data.runtime_iam_settled}"]
    settled = resource("modules/function", "terraform_data", "runtime_iam_settled")
    assert set(settled["depends_on"]) == {
        "${google_project_iam_member.runtime}",
        "${google_secret_manager_secret_iam_member.this}",
        "${google_sql_user.this}",
    }
    assert sleep_of(settled) == "sleep ${var.iam_settle_seconds}"


def _log_metric_alerts() -> dict[str, dict[str, Any]]:
    alerts = config("modules/monitoring")["resource"]["google_monitoring_alert_policy"]
    return {n: a for n, a in alerts.items() if "google_logging_metric." in json.dumps(a)}


def test_alerts_on_log_metrics_wait_until_monitoring_knows_the_metrics():
    """Each policy on a log-based metric depends on a wait that follows every such metric."""
    alerts = _log_metric_alerts()
    assert set(alerts) == {
        "error_rate",
        "latency_p95",
        "circuit_open",
        "rate_limited_spike",
        "batch_failures",
    }
    for name, alert in alerts.items():
        assert alert.get("depends_on") == ["${terraform_data.metrics_known}"], name
    wait = resource("modules/monitoring", "terraform_data", "metrics_known")
    trigger = json.dumps(wait["triggers_replace"])
    for metric in config("modules/monitoring")["resource"]["google_logging_metric"]:
        assert f"google_logging_metric.{metric}" in trigger, metric
    assert sleep_of(wait) == "sleep ${var.metric_propagation_seconds}"
    assert config("modules/monitoring")["variable"]["metric_propagation_seconds"]["default"] >= 600


def test_no_provider_beyond_google_is_needed():
    """Waits are terraform_data (built in): no time or null provider to download and lock."""
    for path in TERRAFORM.rglob("versions.tf"):
        text = path.read_text()
        providers = re.findall(r"^\s*(\w+)\s*=\s*\{\s*\n\s*source", text, re.M)
        assert providers == ["google"], path
    for path in TERRAFORM.rglob("*.tf"):
        assert not re.search(r'resource "(time_sleep|null_resource)"', path.read_text()), path


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_provider_pin_is_exact_and_every_module_admits_it(env):
    """The root pins one google version; each module's range holds it; a lock file matches it."""
    text = (TERRAFORM / "environments" / env / "versions.tf").read_text()
    (pinned,) = re.findall(r'version\s*=\s*"(\d+)\.(\d+)\.(\d+)"', text)
    version = tuple(int(p) for p in pinned)
    for module in MODULES:
        module_text = (TERRAFORM / "modules" / module / "versions.tf").read_text()
        low, high = re.search(
            r'version\s*=\s*">= (\d+\.\d+\.\d+), < (\d+\.\d+\.\d+)"', module_text
        ).groups()
        assert tuple(map(int, low.split("."))) <= version < tuple(map(int, high.split("."))), module
    lock = TERRAFORM / "environments" / env / ".terraform.lock.hcl"
    if lock.is_file():
        assert f'version     = "{".".join(pinned)}"' in lock.read_text()


def test_public_invoker_can_be_switched_off_for_domain_restricted_sharing():
    """allUsers by default; "" grants nothing; the root's choice reaches the function module."""
    variable = config("modules/gateway")["variable"]["public_invoker_member"]
    assert variable["default"] == "allUsers"
    assert config("modules/gateway")["module"]["function"]["public_invoker_member"] == (
        "${var.public_invoker_member}"
    )
    for env in ENVIRONMENTS:
        root = config(f"environments/{env}")
        assert root["module"]["gateway"]["public_invoker_member"] == "${var.public_invoker_member}"
        assert root["variable"]["public_invoker_member"]["default"] == "allUsers"


def test_deployer_acts_as_every_account_it_deploys_with():
    """Function accounts, the builder, the push identity of the subscription it updates and
    the sweep identity of the scheduler job it updates."""
    acts = resource("modules/gateway", "google_service_account_iam_member", "deployer_acts_as")
    assert "module.pubsub.push_service_account_name" in acts["for_each"]
    assert "module.scheduler.service_account_name" in acts["for_each"]
    assert "module.cicd.builder_name" in acts["for_each"]
    assert "for f, m in module.function" in acts["for_each"]
    assert acts["role"] == "roles/iam.serviceAccountUser"
    output = config("modules/pubsub")["output"]["push_service_account_name"]
    assert output["value"] == "${google_service_account.push.name}"


def test_deployer_cannot_grant_itself_owner():
    """Project IAM admin only under a condition listing the stack's own grantable roles."""
    cicd = config("modules/cicd")
    plain = json.dumps(resource("modules/cicd", "google_project_iam_member", "deployer"))
    assert "projectIamAdmin" not in plain
    assert "roles/owner" not in plain
    assert "roles/editor" not in plain
    grants = resource("modules/cicd", "google_project_iam_member", "deployer_grants")
    assert grants["role"] == "roles/resourcemanager.projectIamAdmin"
    expression = one(grants["condition"])["expression"]
    assert "iam.googleapis.com/modifiedGrantsByRole" in expression
    assert ".hasOnly(" in expression
    assert "concat(var.grantable_roles, local.builder_roles)" in expression
    assert config("modules/gateway")["module"]["cicd"]["grantable_roles"] == (
        "${local.function_runtime_roles}"
    )
    grantable = config("modules/gateway")["locals"]["function_runtime_roles"]
    grantable += cicd["locals"]["builder_roles"]
    forbidden = {"roles/owner", "roles/editor", "roles/resourcemanager.projectIamAdmin"}
    assert not forbidden & set(grantable)
    assert not any(r.startswith("roles/iam.") for r in grantable)


def test_scaling_changes_do_not_restart_cloud_sql():
    """max_connections is the fixed ceiling, not the pools' sum; the pools must fit under it."""
    locals_ = config("modules/database")["locals"]
    instance = resource("modules/database", "google_sql_database_instance", "this")
    flags = {f["name"]: f["value"] for f in one(instance["settings"])["database_flags"]}
    assert "local." not in flags["max_connections"]
    assert "max_instances" not in json.dumps(flags)
    assert "var.max_instances_by_function" in locals_["app_connections"]
    assert flags["cloudsql.enable_pgaudit"] == "on"


def test_rate_limited_metric_counts_budget_refusals_too():
    """Both 429 outcomes of limits.ratelimit (limited, budget) feed the metric and its alert."""
    metric = resource("modules/monitoring", "google_logging_metric", "rate_limited")
    assert '${local.log_field.rate_limit}="limited"' in metric["filter"]
    assert '${local.log_field.rate_limit}="budget"' in metric["filter"]
    assert metric["label_extractors"]["reason"] == "EXTRACT(${local.log_field.rate_limit})"
    source = (ROOT / "shared" / "limits" / "ratelimit.py").read_text()
    assert '"limited" if reason == 1 else "budget"' in source


def test_token_charts_are_rates():
    """Token charts take the rate of the distributions' running sum (PromQL), per model."""
    charts = config("modules/monitoring")["locals"]["charts"]
    tokens = [c for c in charts if "tokens/s" in c["title"]]
    assert len(tokens) == 2
    for chart in tokens:
        assert chart["promql"].startswith("sum by (model) (rate(")
        assert "_sum{" in chart["promql"]
    promql = config("modules/monitoring")["locals"]["promql_metric"]
    assert "logging_googleapis_com:user_" in promql


# --- Batch bursts (docs/batches.md) ---------------------------------------------------------


def retries_within(seconds: float, minimum: float, maximum: float) -> int:
    """Retries Pub/Sub makes of one message within `seconds`: the wait doubles up to the maximum."""
    retries, waited, wait = 0, 0.0, max(minimum, 1)
    while waited + wait <= seconds:
        waited += wait
        retries += 1
        wait = min(wait * 2, maximum)
    return retries


def burst_attempts(env: str) -> tuple[int, int, int]:
    """(deliveries at once, seconds to drain the burst, attempts the last message may spend)."""
    gateway = config("modules/gateway")["variable"]
    batch = config(f"environments/{env}")["variable"]["functions"]["default"]["batch"]
    parallel = batch["max_instances"] * batch["concurrency"]
    burst = gateway["batch_burst_messages"]["default"]
    drain = -(-burst // parallel) * batch["timeout_seconds"]
    minimum = gateway["batch_minimum_backoff_seconds"]["default"]
    maximum = gateway["batch_maximum_backoff_seconds"]["default"]
    return parallel, drain, 1 + retries_within(drain, minimum, maximum)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_burst_of_1000_batches_runs_before_any_is_dead_lettered(env):
    """At the environment's scaling, the last of 1,000 messages keeps half its attempts spare."""
    gateway = config("modules/gateway")["variable"]
    assert gateway["batch_burst_messages"]["default"] == 1000
    max_attempts = gateway["batch_max_delivery_attempts"]["default"]
    parallel, drain, attempts = burst_attempts(env)
    assert attempts * 2 <= max_attempts, (env, parallel, drain, attempts)
    # The figures docs/batches.md gives.
    doc = (ROOT / "docs" / "batches.md").read_text()
    assert f"| {env} | {parallel} | {drain:,} s | {attempts} |" in doc


def test_burst_settings_reach_the_subscription():
    """The gateway's attempts and backoff are the subscription's, and its check uses them."""
    call = config("modules/gateway")["module"]["pubsub"]
    assert call["max_delivery_attempts"] == "${var.batch_max_delivery_attempts}"
    assert call["minimum_backoff_seconds"] == "${var.batch_minimum_backoff_seconds}"
    assert call["maximum_backoff_seconds"] == "${var.batch_maximum_backoff_seconds}"
    sub = resource("modules/pubsub", "google_pubsub_subscription", "batch_push")
    retry = one(sub["retry_policy"])
    assert retry["minimum_backoff"] == "${var.minimum_backoff_seconds}s"
    assert retry["maximum_backoff"] == "${var.maximum_backoff_seconds}s"
    assert one(sub["dead_letter_policy"])["max_delivery_attempts"] == (
        "${var.max_delivery_attempts}"
    )
    assert config("modules/pubsub")["variable"]["max_delivery_attempts"]["default"] == 100
    text = (TERRAFORM / "modules" / "gateway" / "main.tf").read_text()
    assert 'check "batch_burst"' in text
    assert "local.burst_attempts * 2 <= var.batch_max_delivery_attempts" in text


_BURST_LOCALS = (
    "batch_parallel",
    "burst_drain_seconds",
    "backoff_doublings",
    "backoff_ramp_seconds",
    "burst_attempts",
)


@pytest.mark.parametrize(
    ("parallel", "minimum", "maximum"),
    [(24, 10, 600), (40, 10, 600), (8, 10, 600), (500, 10, 600), (20, 60, 600), (4, 600, 600)],
)
def test_terraform_burst_arithmetic_matches_the_backoff_schedule(
    tmp_path, parallel, minimum, maximum
):
    """`terraform console` on the gateway's own locals gives the simulated schedule's attempts."""
    locals_ = config("modules/gateway")["locals"]
    body = "\n".join(f"  {n} = {locals_[n][2:-1]}" for n in _BURST_LOCALS)
    config_text = f"""
variable "functions" {{
  default = {{ batch = {{ max_instances = {parallel}, concurrency = 1, timeout_seconds = 540 }} }}
}}
variable "batch_burst_messages" {{ default = 1000 }}
variable "batch_minimum_backoff_seconds" {{ default = {minimum} }}
variable "batch_maximum_backoff_seconds" {{ default = {maximum} }}
locals {{
{body}
}}
"""
    drain = -(-1000 // parallel) * 540
    answer = terraform_console(tmp_path, config_text, "local.burst_attempts")
    assert int(answer) == 1 + retries_within(drain, minimum, maximum)


def terraform_console(directory: Path, config_text: str, expression: str) -> str:
    """The value of `expression` in a provider-free configuration, from `terraform console`."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("the terraform binary is not installed")
    (directory / "main.tf").write_text(config_text)
    env = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin"}
    for command, stdin in (
        (["init", "-input=false", "-backend=false"], None),
        (["console"], expression + "\n"),
    ):
        result = subprocess.run(
            [binary, *command],
            cwd=directory,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_deployer_grant_condition_renders_as_the_cel_iam_expects(tmp_path):
    """The condition template renders to hasOnly([...]) over the runtime and builder roles."""
    cicd = config("modules/cicd")
    expression = one(
        resource("modules/cicd", "google_project_iam_member", "deployer_grants")["condition"]
    )["expression"]
    runtime = config("modules/gateway")["locals"]["function_runtime_roles"]
    text = (TERRAFORM / "modules" / "cicd" / "main.tf").read_text()
    (template,) = re.findall(r'expression\s*=\s*("api\.getAttribute.*")\n', text)
    config_text = f"""
variable "grantable_roles" {{ default = {json.dumps(runtime)} }}
locals {{
  builder_roles = {json.dumps(cicd["locals"]["builder_roles"])}
  expression    = {template}
}}
"""
    rendered = json.loads(terraform_console(tmp_path, config_text, "local.expression"))
    roles = sorted(set(runtime) | set(cicd["locals"]["builder_roles"]))
    quoted = ", ".join(f"'{r}'" for r in roles)
    assert rendered == (
        f"api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([{quoted}])"
    )
    assert "modifiedGrantsByRole" in expression


# --- Arguments against the provider's own schema ----------------------------------------------

SCHEMA = json.loads((ROOT / "tests" / "data" / "google_provider_schema.json").read_text())
_META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner"}


def _schema_problems(block: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    """Each argument or nested block of `block` the schema lacks, and each required one missing."""
    problems: list[str] = []
    present = set(block)
    for key, value in block.items():
        if key in _META_ARGUMENTS:
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, spec in dynamic.items():
                    present.add(name)
                    if name not in schema["args"] or schema["args"][name] is None:
                        problems.append(f"{where}: dynamic {name} is not a block of the provider")
                        continue
                    for content in spec.get("content", []):
                        problems += _schema_problems(
                            content, schema["args"][name], f"{where}.{name}"
                        )
            continue
        if key not in schema["args"]:
            problems.append(f"{where}: {key} is not an argument of the provider")
            continue
        nested = schema["args"][key]
        if nested is not None:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    problems += _schema_problems(item, nested, f"{where}.{key}")
    problems += [f"{where}: required {r} missing" for r in schema["required"] if r not in present]
    return problems


def _google_blocks() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, type, where, body) of every google resource and data source under terraform/."""
    found = []
    for path in sorted(TERRAFORM.rglob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle, serialization_options=_OPTIONS)
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        where = f"{path.relative_to(TERRAFORM)}: {rtype}.{name}"
                        found.append((kind, rtype, where, body))
    return found


def test_schema_is_the_pinned_provider_version():
    """tests/data/google_provider_schema.json comes from the version every root pins."""
    for env in ENVIRONMENTS:
        text = (TERRAFORM / "environments" / env / "versions.tf").read_text()
        (pinned,) = re.findall(r'version\s*=\s*"(\d+\.\d+\.\d+)"', text)
        assert pinned == SCHEMA["provider_version"], env


def test_every_argument_exists_in_the_provider_schema():
    """Each google resource and data source uses only arguments and blocks the provider has."""
    blocks = [b for b in _google_blocks() if b[1].startswith("google_")]
    assert len(blocks) > 50
    problems = []
    for kind, rtype, where, body in blocks:
        if rtype not in SCHEMA[kind]:
            problems.append(
                f"{where}: {rtype} is not in the schema file (python -m deploy.provider_schema)"
            )
            continue
        problems += _schema_problems(body, SCHEMA[kind][rtype], where)
    assert not problems, "\n".join(problems)


def test_schema_check_catches_a_wrong_argument():
    """The check is not vacuous: a misspelt argument, a wrong nested one and a missing one fail."""
    function = SCHEMA["resource"]["google_cloudfunctions2_function"]
    assert _schema_problems({"name": "f", "location": "r", "build_confg": [{}]}, function, "x")
    bad_nested = {"name": "f", "location": "r", "service_config": [{"max_instances": 1}]}
    assert _schema_problems(bad_nested, function, "x") == [
        "x.service_config: max_instances is not an argument of the provider"
    ]
    member = SCHEMA["resource"]["google_project_iam_member"]
    assert _schema_problems({"project": "p", "role": "r"}, member, "y") == [
        "y: required member missing"
    ]


def test_batch_redis_pool_holds_every_worker_of_every_delivery():
    """The batch function's Redis cap is deliveries x workers (+16); build_redis uses it."""
    from shared.redis_client import build_redis

    batch_env = config("modules/gateway")["locals"]["batch_environment"]
    assert batch_env["REDIS_MAX_CONNECTIONS"] == (
        '${tostring(var.functions["batch"].concurrency * var.batch_concurrency + 16)}'
    )
    client = build_redis(Settings(redis_max_connections=316))
    try:
        assert client.connection_pool.max_connections == 316
    finally:
        client.close()
