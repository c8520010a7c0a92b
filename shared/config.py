"""The typed settings object, read from the environment once per process.

`Settings.from_env()` validates every variable and raises one `ConfigError`
naming each bad or missing one, so a misconfigured deploy fails at start with
the whole list rather than one variable per restart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal, TypeVar

from shared.errors import ConfigError

__all__ = ["FailureMode", "HttpClientName", "Settings"]

T = TypeVar("T")
HttpClientName = Literal["lean", "urllib3", "httpx2"]
Environment = Literal["local", "test", "dev", "staging", "prod"]


class FailureMode(StrEnum):
    """What the rate limiter does while Redis is unreachable."""

    FAIL_OPEN = "fail-open"  # let requests through, unlimited
    FAIL_CLOSED = "fail-closed"  # refuse them with 503


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Settings:
    """Every setting of the gateway. Names match the environment variables."""

    environment: Environment = "local"
    log_level: str = "INFO"
    gcp_project: str = ""
    # Logging of request and response bodies, redacted, for debugging only.
    log_bodies: bool = False
    # Request threads of one instance (Cloud Run's concurrency; functions-framework's
    # gunicorn reads the same variable) and the port it listens on.
    threads: int = 16
    port: int = 8080

    # Mistral
    mistral_api_key: str = field(default="", repr=False)
    mistral_server_url: str = "https://api.mistral.ai"
    mistral_timeout_ms: int = 120_000
    mistral_connect_timeout_ms: int = 3_000
    mistral_max_retries: int = 2
    mistral_retry_max_ms: int = 5_000
    # The HTTP client under the SDK (shared.mistral): "httpx2" is the SDK's own.
    mistral_http_client: HttpClientName = "lean"

    # PostgreSQL: DATABASE_URL, or Cloud SQL through the connector, or DB_HOST.
    database_url: str = field(default="", repr=False)
    cloud_sql_instance: str = ""
    db_iam_auth: bool = False
    db_private_ip: bool = True
    db_host: str = ""
    db_port: int = 5432
    db_name: str = "gateway"
    db_user: str = "gateway"
    db_password: str = field(default="", repr=False)
    db_pool_size: int = 5
    db_pool_timeout_ms: int = 2_000
    # Until the process has once connected to the database, opening a connection
    # (TCP, TLS, login) may take this long: on a cold instance Direct VPC egress may
    # not connect for a while. A request waits at most this (plus the pool wait), then
    # gets 503 with Retry-After. Afterwards connections open, and read, under the pool
    # timeout (at least 1 s), as they always did.
    db_connect_timeout_ms: int = 5_000
    db_statement_timeout_ms: int = 5_000
    db_conn_max_age_s: int = 1_800

    # Redis / Memorystore: REDIS_URL, or host, port, password and TLS.
    redis_url: str = field(default="", repr=False)
    redis_host: str = ""
    redis_port: int = 6379
    redis_password: str = field(default="", repr=False)
    redis_tls: bool = False
    # The Memorystore server CA: a path to a PEM file, or the PEM itself.
    redis_ca_cert: str = field(default="", repr=False)
    redis_timeout_ms: int = 100
    # Until the process has once connected to Redis, opening a connection (TCP, TLS
    # handshake, AUTH) may take this long: a cold instance's first connection is slow
    # (Direct VPC egress, TLS on a CPU busy starting up). Once connected, the network is
    # known to work and every connection opens under redis_timeout_ms, as commands run.
    redis_connect_timeout_ms: int = 2_000
    # Connections the process may open at once; 0 derives it from THREADS and
    # BATCH_CONCURRENCY. The batch function runs THREADS deliveries at once, each
    # with BATCH_CONCURRENCY workers: Terraform sets it to their product.
    redis_max_connections: int = 0
    # Check the server certificate's name against REDIS_HOST (an IP address), on top
    # of the chain check against REDIS_CA_CERT. Off for Memorystore: its server
    # certificate names the address in the subject CN, not as an IP subject
    # alternative name, which is all Python's check reads; the CA is the instance's
    # own, so a certificate that chains to it can only be that instance's
    # (docs/deploy.md, tests/functional/test_redis_tls.py).
    redis_tls_check_hostname: bool = False

    # Limits
    rate_limit_requests: int = 60
    rate_limit_window: int = 60
    rate_limit_failure_mode: FailureMode = FailureMode.FAIL_OPEN
    token_budget_per_minute: int = 0  # 0: no budget
    token_budget_per_day: int = 0
    max_body_bytes: int = 1_048_576
    # A body past MAX_BODY_BYTES is read and thrown away up to this many bytes before the
    # 413 is sent, so the caller, still sending, reads the 413 instead of a reset.
    max_discard_bytes: int = 33_554_432
    # Uploads (files, library documents) stream through: the most one may carry. Cloud Run
    # itself refuses HTTP/1 requests over 32 MiB before the function sees them; only with
    # HTTP/2 end to end can a larger one arrive (README, "Tenant-owned resources").
    max_upload_bytes: int = 536_870_912
    # Inline media (an OCR document, audio to transcribe, images in a chat or agents call)
    # may make a pass-through body larger than MAX_BODY_BYTES, up to this (Cloud Run's own
    # HTTP/1 limit); it must say its Content-Length. Every such body an instance holds at
    # once counts against MEDIA_BODY_BUDGET_BYTES: past it, 503 and Retry-After.
    max_media_body_bytes: int = 33_554_432
    media_body_budget_bytes: int = 268_435_456
    # A stream the caller left is read on to its end, within these bounds, so the turn is
    # charged what Mistral produced and stored whole.
    abandoned_stream_read_s: int = 300
    abandoned_stream_read_bytes: int = 16_777_216
    # A turn's token reservation (shared.limits.estimate): the completion it reserves when the
    # body sets no max_tokens, and the model's context window, which caps any turn.
    token_reserve_completion: int = 1024
    model_context_tokens: int = 131_072
    max_input_chars: int = 100_000
    # JSON list of {"pattern": "<phrase>", "action": "log" | "redact" | "reject"};
    # empty means the default watch list (shared.conversations.policy.DEFAULT_PATTERNS).
    input_policy_patterns: str = ""
    input_control_chars: str = "reject"

    # Circuit breaker shared through Redis
    breaker_failure_threshold: int = 5
    breaker_cooldown_s: int = 30

    idempotency_ttl_s: int = 86_400
    revocation_cache_s: int = 5

    # Batches (shared.batch, docs/batches.md)
    # Items of one delivery that run at once (threads calling Mistral).
    batch_concurrency: int = 50
    # A message published longer ago than this is recorded and dropped.
    batch_max_age_s: int = 86_400
    # How long a claimed item belongs to its worker without a renewal.
    batch_lease_s: int = 60
    # After this long a delivery claims nothing new and answers 503 for the rest
    # (redelivered later); it must leave room, within the function's timeout, for
    # the calls still in flight (MISTRAL_TIMEOUT_MS).
    batch_time_budget_s: int = 400
    # Claims of one item whose call may have reached Mistral and failed
    # transiently (5xx, timeout); after the last one the item fails.
    batch_item_max_attempts: int = 3
    # The batch principal's own request limit (0: RATE_LIMIT_REQUESTS / _WINDOW).
    batch_rate_limit_requests: int = 0
    batch_rate_limit_window: int = 0
    # Mistral batch jobs (shared.resources): the most jobs one sweep run asks Mistral about
    # (it also stops once BATCH_TIME_BUDGET_S has passed), and the most bytes of a job's
    # input files a create reads to price it (past them the estimate is scaled).
    batch_sweep_max_jobs: int = 500
    batch_estimate_max_bytes: int = 8_388_608

    @property
    def concurrency(self) -> int:
        """Threads that may each hold an upstream or Redis connection at once: the request
        threads, or a batch delivery's item workers, whichever is more."""
        return max(self.threads, self.batch_concurrency, 1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError naming all problems."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            name = f.name.upper()
            raw = env.get(name)
            if raw is None:
                continue
            parse = _PARSERS.get(f.name, _parser_for(f.type))
            try:
                values[f.name] = parse(raw.strip())
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        settings = cls(**values) if not problems else None
        if settings is not None:
            problems.extend(settings._cross_checks())
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        assert settings is not None
        return settings

    def _cross_checks(self) -> list[str]:
        problems = []
        deployed = self.environment in ("dev", "staging", "prod")
        if deployed and not self.mistral_api_key:
            problems.append("MISTRAL_API_KEY: required when ENVIRONMENT is " + self.environment)
        if deployed and not (self.database_url or self.cloud_sql_instance or self.db_host):
            problems.append("CLOUD_SQL_INSTANCE: required (or DATABASE_URL / DB_HOST)")
        if deployed and not (self.redis_url or self.redis_host):
            problems.append("REDIS_HOST: required (or REDIS_URL)")
        if self.db_iam_auth and not self.cloud_sql_instance:
            problems.append("DB_IAM_AUTH: needs CLOUD_SQL_INSTANCE")
        if self.input_policy_patterns:
            from shared.conversations.policy import InputPolicy

            try:
                InputPolicy.from_config(
                    self.input_policy_patterns, max_chars=1, control_chars="allow"
                )
            except ConfigError as exc:
                problems.append(exc.message)
        tls = self.redis_tls or self.redis_url.startswith("rediss://")
        if self.redis_ca_cert and not tls:
            problems.append("REDIS_CA_CERT: set, but REDIS_TLS is off")
        if deployed and tls and not self.redis_ca_cert and not self.redis_tls_check_hostname:
            # Neither the instance's CA nor the name: any publicly trusted certificate passes.
            problems.append("REDIS_CA_CERT: required with TLS unless REDIS_TLS_CHECK_HOSTNAME=true")
        return problems


def _int(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _bool(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _choice(*options: str, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw and not raw.startswith(tuple(s + "://" for s in schemes)):
            # The value may hold a password: name the expected scheme, not the value.
            raise ValueError(f"expected a {' or '.join(schemes)} URL")
        return raw.rstrip("/")

    return parse


def _parser_for(kind: Any) -> Callable[[str], Any]:
    if kind in ("int", int):
        return _int(0)
    if kind in ("bool", bool):
        return _bool
    return str


_PARSERS: dict[str, Callable[[str], Any]] = {
    "environment": _choice("local", "test", "dev", "staging", "prod"),
    "log_level": _choice(*_LOG_LEVELS, upper=True),
    "mistral_server_url": _url("http", "https"),
    "database_url": _url("postgresql", "postgres"),
    "redis_url": _url("redis", "rediss"),
    "rate_limit_failure_mode": lambda raw: FailureMode(_choice(*FailureMode)(raw)),
    "mistral_http_client": _choice("lean", "urllib3", "httpx2"),
    "threads": _int(1),
    "port": _int(0),  # 0: any free port (tests of `make run`)
    "input_control_chars": _choice("reject", "strip", "allow"),
    "rate_limit_requests": _int(1),
    "rate_limit_window": _int(1),
    "db_pool_size": _int(1),
    "db_port": _int(1),
    "redis_port": _int(1),
    "mistral_timeout_ms": _int(1),
    "mistral_connect_timeout_ms": _int(1),
    "db_pool_timeout_ms": _int(1),
    "db_connect_timeout_ms": _int(1),
    "redis_timeout_ms": _int(1),
    "redis_connect_timeout_ms": _int(1),
    "max_body_bytes": _int(1),
    "max_upload_bytes": _int(1),
    "max_media_body_bytes": _int(1),
    "media_body_budget_bytes": _int(1),
    "breaker_failure_threshold": _int(1),
    "breaker_cooldown_s": _int(1),
    "batch_concurrency": _int(1),
    "batch_max_age_s": _int(1),
    "batch_lease_s": _int(1),
    "batch_time_budget_s": _int(1),
    "batch_item_max_attempts": _int(1),
    "batch_sweep_max_jobs": _int(1),
    "batch_estimate_max_bytes": _int(1),
}
