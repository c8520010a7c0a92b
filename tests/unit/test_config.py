"""Settings: read once from the environment, every problem named at once."""

import pytest

from shared.config import Settings
from shared.errors import ConfigError


def test_defaults_need_no_environment() -> None:
    """An empty environment gives the local defaults."""
    settings = Settings.from_env({})
    assert settings.environment == "local"
    assert settings.rate_limit_requests == 60
    assert settings.db_pool_size == 5


def test_values_are_parsed_to_their_types() -> None:
    """Integers, booleans and choices are converted and normalised."""
    settings = Settings.from_env(
        {
            "DB_POOL_SIZE": "7",
            "REDIS_TLS": "true",
            "LOG_LEVEL": "debug",
            "RATE_LIMIT_FAILURE_MODE": "fail-closed",
        }
    )
    assert settings.db_pool_size == 7
    assert settings.redis_tls is True
    assert settings.log_level == "DEBUG"
    assert settings.rate_limit_failure_mode == "fail-closed"


def test_every_bad_variable_is_named_in_one_error() -> None:
    """Three bad variables give one ConfigError naming all three."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DB_POOL_SIZE": "zero", "REDIS_TLS": "maybe", "LOG_LEVEL": "LOUD"})
    message = str(caught.value)
    for name in ("DB_POOL_SIZE", "REDIS_TLS", "LOG_LEVEL"):
        assert name in message


def test_deployed_environment_requires_its_services() -> None:
    """In prod, missing Mistral key, database and Redis are all reported."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"ENVIRONMENT": "prod"})
    message = str(caught.value)
    assert "MISTRAL_API_KEY" in message
    assert "CLOUD_SQL_INSTANCE" in message
    assert "REDIS_HOST" in message


def test_secret_values_never_appear_in_errors_or_repr() -> None:
    """A malformed URL holding a password is reported without the password."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": "mysql://u:hunter2@h/db", "DB_POOL_SIZE": "x"})
    assert "hunter2" not in str(caught.value)
    settings = Settings(mistral_api_key="sk-secret", db_password="pw-secret")
    assert "sk-secret" not in repr(settings)
    assert "pw-secret" not in repr(settings)


def test_minimums_are_enforced() -> None:
    """A pool of zero connections is rejected, not silently accepted."""
    with pytest.raises(ConfigError, match="DB_POOL_SIZE: must be at least 1"):
        Settings.from_env({"DB_POOL_SIZE": "0"})


def test_threads_and_port_are_read_once_with_one_concurrency_formula() -> None:
    """THREADS and PORT are settings; connections follow max(THREADS, BATCH_CONCURRENCY)."""
    settings = Settings.from_env({"THREADS": "300", "PORT": "9090", "BATCH_CONCURRENCY": "4"})
    assert (settings.threads, settings.port, settings.concurrency) == (300, 9090, 300)
    assert Settings.from_env({"THREADS": "4", "BATCH_CONCURRENCY": "50"}).concurrency == 50
    with pytest.raises(ConfigError, match="THREADS: must be at least 1"):
        Settings.from_env({"THREADS": "0"})


def test_the_http_client_under_the_sdk_is_a_named_choice() -> None:
    """MISTRAL_HTTP_CLIENT takes one of the known clients, and refuses anything else."""
    assert Settings.from_env({"MISTRAL_HTTP_CLIENT": "urllib3"}).mistral_http_client == "urllib3"
    with pytest.raises(ConfigError, match="MISTRAL_HTTP_CLIENT"):
        Settings.from_env({"MISTRAL_HTTP_CLIENT": "curl"})


def test_redis_tls_and_connect_settings() -> None:
    """Hostname check off by default; connect timeouts are their own settings and validated."""
    settings = Settings.from_env(
        {
            "REDIS_TLS": "true",
            "REDIS_CA_CERT": "/ca.pem",
            "REDIS_TLS_CHECK_HOSTNAME": "on",
            "REDIS_CONNECT_TIMEOUT_MS": "1500",
            "DB_CONNECT_TIMEOUT_MS": "8000",
        }
    )
    assert settings.redis_tls_check_hostname is True
    assert (settings.redis_connect_timeout_ms, settings.db_connect_timeout_ms) == (1500, 8000)
    assert Settings.from_env({}).redis_tls_check_hostname is False
    with pytest.raises(ConfigError, match="DB_CONNECT_TIMEOUT_MS.*REDIS_CONNECT_TIMEOUT_MS"):
        Settings.from_env({"REDIS_CONNECT_TIMEOUT_MS": "0", "DB_CONNECT_TIMEOUT_MS": "0"})


def test_deployed_tls_needs_the_instance_ca_or_the_name_check() -> None:
    """Deployed with TLS but neither a CA nor a hostname check: refused at start."""
    deployed = {
        "ENVIRONMENT": "prod",
        "MISTRAL_API_KEY": "k",
        "CLOUD_SQL_INSTANCE": "p:r:i",
        "REDIS_HOST": "10.0.0.3",
        "REDIS_TLS": "true",
    }
    with pytest.raises(ConfigError, match="REDIS_CA_CERT: required with TLS"):
        Settings.from_env(deployed)
    assert Settings.from_env({**deployed, "REDIS_CA_CERT": "/ca.pem"}).redis_tls
    assert Settings.from_env({**deployed, "REDIS_TLS_CHECK_HOSTNAME": "true"}).redis_tls
