"""cloudbuild.yaml (and deploy/bootstrap-db.yaml): step order, and every name they use exists."""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import revisions, smoke, tfoutputs
from deploy.grants import bootstrap_statements, grant_statements, parse_users

ROOT = Path(__file__).resolve().parents[2]
# Substitutions every build has (https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values).
BUILT_IN = {"PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "COMMIT_SHA", "SHORT_SHA"}
# Cloud Build substitutes $NAME and ${NAME}; $$ is a literal dollar for the shell.
_SUBSTITUTION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


BUILD_FILES = ("cloudbuild.yaml", "deploy/bootstrap-db.yaml", "deploy/admin-key.yaml")


@cache
def build(name: str = "cloudbuild.yaml") -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def steps() -> list[dict[str, Any]]:
    return build()["steps"]


def step(step_id: str) -> dict[str, Any]:
    (found,) = [s for s in steps() if s.get("id") == step_id]
    return found


def script(s: dict[str, Any]) -> str:
    return " ".join([s.get("entrypoint", ""), *map(str, s.get("args", []))])


def position(step_id: str) -> int:
    return [s.get("id") for s in steps()].index(step_id)


def substitutions_used(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(substitutions_used(v) for v in node.values()), set())
    if isinstance(node, list):
        return set().union(*(substitutions_used(v) for v in node), set())
    if isinstance(node, str):
        return {a or b for a, b in _SUBSTITUTION.findall(node)}
    return set()


def test_steps_run_test_then_migrate_then_apply_then_grants_then_smoke():
    """Nothing is migrated before tests pass, nor applied before migrations, nor smoked before."""
    order = [
        position(s)
        for s in (
            "preflight",
            "test",
            "bundles",
            "plan",
            "revisions",
            "migrate",
            "apply",
            "grants",
            "smoke",
        )
    ]
    assert order == sorted(order)
    assert all("waitFor" not in s for s in steps()), "waitFor would break the sequential order"


@pytest.mark.parametrize("name", BUILD_FILES)
def test_every_step_has_an_id_and_a_pinned_image(name):
    """Each step is named and runs the Python or Terraform image at an exact version."""
    for s in build(name)["steps"]:
        assert s.get("id"), s
        assert re.fullmatch(
            r"python:3\.11\.\d+-bookworm|hashicorp/terraform:\d+\.\d+\.\d+"
            r"|gcr\.io/google\.com/cloudsdktool/cloud-sdk:\d+\.\d+\.\d+-slim",
            s["name"],
        ), s["name"]


def test_terraform_image_meets_the_roots_required_version():
    """The pipeline's Terraform is one the environment roots accept, and the same everywhere."""
    versions = {s["name"].split(":")[1] for s in steps() if s["name"].startswith("hashicorp/")}
    assert len(versions) == 1
    (version,) = versions
    major, minor, _ = (int(p) for p in version.split("."))
    for env in ("dev", "prod"):
        text = (ROOT / f"terraform/environments/{env}/versions.tf").read_text()
        low = re.search(r'required_version\s*=\s*">= (\d+)\.(\d+)\.\d+, < (\d+)\.0\.0"', text)
        assert low, env
        assert (int(low[1]), int(low[2])) <= (major, minor) < (int(low[3]), 0), env


def test_test_step_runs_the_project_gate():
    """Right after the preflight, the build runs `make test`, the README's command."""
    assert [s["id"] for s in steps()[:2]] == ["preflight", "test"]
    assert script(step("test")).split() == ["make", "test"]


def test_preflight_refuses_example_values_and_a_missing_lock_file():
    """No default domain or alert address; the preflight stops empty or example ones."""
    subs = build()["substitutions"]
    assert subs["_DOMAIN"] == ""
    assert subs["_ALERT_EMAIL"] == ""
    text = script(step("preflight"))
    assert '"${_DOMAIN}" in ""|*example.com' in text
    assert '"${_ALERT_EMAIL}" in ""|*@example.com' in text
    assert "terraform/environments/${_ENV}/.terraform.lock.hcl" in text


def test_init_uses_the_committed_lock_file_read_only():
    """`terraform init -lockfile=readonly`: providers are exactly the ones the lock file lists."""
    assert "terraform init -input=false -lockfile=readonly" in script(step("plan"))
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".terraform.lock.hcl" not in ignored
    assert "terraform.tfvars" in ignored


def test_grants_run_after_apply_and_a_failed_smoke_rolls_back():
    """Grants follow the apply (new users exist); a failed smoke test restores the old revisions."""
    assert "-m deploy.grants" in script(step("grants"))
    assert "deploy.grants" not in script(step("migrate"))
    assert "deploy.revisions record" in script(step("revisions")).replace(",", "")
    smoke_script = script(step("smoke"))
    assert "if ! .venv/bin/python -m deploy.smoke" in smoke_script
    assert "-m deploy.revisions rollback" in smoke_script
    assert smoke_script.index("rollback") < smoke_script.index("exit 1")


@pytest.mark.parametrize("name", BUILD_FILES)
def test_referenced_python_modules_exist(name):
    """Every `python -m X` a step runs is a module in this checkout."""
    modules = set()
    for s in build(name)["steps"]:
        modules |= set(re.findall(r"-m,? ([a-z_][a-z0-9_.]*)", script(s)))
    modules = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names}
    assert modules
    for module in modules:
        path = ROOT.joinpath(*module.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module


def test_pipeline_runs_the_deploy_modules():
    """The pipeline bundles, migrates, grants and smoke-tests with the project's own modules."""
    modules = set()
    for s in steps():
        modules |= set(re.findall(r"-m,? ([a-z_][a-z0-9_.]*)", script(s)))
    assert {"deploy.bundle", "shared.db.migrate", "deploy.grants", "deploy.smoke"} <= modules


def _make_targets() -> set[str]:
    targets = set()
    for path in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]:
        if path.is_file():
            targets |= set(re.findall(r"^([A-Za-z][\w.-]*)\s*::?(?!=)", path.read_text(), re.M))
    return targets


def test_referenced_make_targets_exist():
    """Every `make X` a step runs is a target of the Makefile or an included fragment."""
    wanted = set()
    for s in steps():
        text = script(s)
        wanted |= set(re.findall(r"\bmake\s+([A-Za-z][\w.-]*)", text))
    assert wanted
    if not (ROOT / "Makefile").is_file():
        pytest.skip("no Makefile in this checkout yet")
    assert wanted <= _make_targets(), wanted - _make_targets()


def test_terraform_steps_run_in_existing_environment_roots():
    """The Terraform steps' directory exists for the default and every environment."""
    default_env = build()["substitutions"]["_ENV"]
    for step_id in ("plan", "apply"):
        directory = step(step_id)["dir"]
        assert directory == "terraform/environments/${_ENV}"
        for env in {default_env, "dev", "prod"}:
            assert (ROOT / directory.replace("${_ENV}", env) / "versions.tf").is_file(), env


def test_files_the_steps_share_are_written_before_they_are_read():
    """tf-outputs.json and tfplan come from an earlier step than the one reading them."""
    assert "tf-outputs.json" in script(step("plan"))
    assert "tf-outputs.json" in script(step("migrate"))
    assert "-out=tfplan" in script(step("plan"))
    assert "apply -input=false tfplan" in script(step("apply"))
    assert "tf-outputs.json" in script(step("smoke"))


def test_bundles_land_where_terraform_reads_them():
    """The bundle step writes dist/, which every environment's bundle_dir points at."""
    args = step("bundles")["args"]
    out = args[args.index("--out") + 1]
    for env in ("dev", "prod"):
        root = ROOT / "terraform" / "environments" / env
        text = (root / "variables.tf").read_text()
        default = re.search(r'variable "bundle_dir" \{[^}]*default\s*=\s*"([^"]+)"', text, re.S)
        assert default, env
        assert (root / default[1]).resolve() == (ROOT / out).resolve(), env


@pytest.mark.parametrize("name", BUILD_FILES)
def test_every_substitution_used_is_declared(name):
    """Each $_NAME in the file is in `substitutions` (MUST_MATCH fails the build otherwise)."""
    config = build(name)
    declared = set(config["substitutions"])
    used = substitutions_used({k: v for k, v in config.items() if k != "substitutions"})
    used |= substitutions_used(config["substitutions"])
    user_defined = {u for u in used if u.startswith("_")}
    assert user_defined <= declared, user_defined - declared
    assert used - user_defined <= BUILT_IN, used - user_defined - BUILT_IN
    assert declared <= user_defined, f"declared but unused: {declared - user_defined}"
    assert config["options"]["substitutionOption"] == "MUST_MATCH"


def test_substitution_pattern_ignores_shell_dollars():
    """$$(...) is the shell's, not a substitution; $_ENV and ${_ENV} are substitutions."""
    assert substitutions_used('eval "$$(python x)" $_ENV ${_REGION}') == {"_ENV", "_REGION"}


@pytest.mark.parametrize(
    ("name", "secret"), [(BUILD_FILES[0], "SMOKE_API_KEY"), (BUILD_FILES[1], "DB_PASSWORD")]
)
def test_secrets_used_are_available(name, secret):
    """Each secretEnv a step reads is in availableSecrets, and each available one is used."""
    config = build(name)
    available = {s["env"] for s in config["availableSecrets"]["secretManager"]}
    used = {env for s in config["steps"] for env in s.get("secretEnv", [])}
    assert used == available == {secret}
    plain = {e.split("=", 1)[0] for e in config["options"].get("env", [])}
    assert not plain & used, "a secret must not also be a plain variable"


def test_bootstrap_targets_the_instance_and_user_terraform_makes():
    """deploy/bootstrap-db.yaml names the instance, database and deployer user Terraform creates."""
    env = dict(e.split("=", 1) for e in build("deploy/bootstrap-db.yaml")["options"]["env"])
    database = (ROOT / "terraform/modules/database").joinpath("variables.tf").read_text()
    gateway = (ROOT / "terraform/modules/gateway/main.tf").read_text()
    assert re.search(r'module "database" \{[^}]*\bname\s*=\s*local\.name\n', gateway)
    assert 'name = "gateway-${var.environment}"' in gateway
    assert env["CLOUD_SQL_INSTANCE"] == "${PROJECT_ID}:${_REGION}:gateway-${_ENV}"
    assert f'default     = "{env["DB_NAME"]}"' in database
    assert env["DB_MIGRATOR"] == "gateway-${_ENV}-deployer@${PROJECT_ID}.iam"
    assert env["DB_IAM_AUTH"] == "false"
    (bootstrap,) = build("deploy/bootstrap-db.yaml")["steps"]
    assert "-m deploy.grants --bootstrap" in script(bootstrap)


def _terraform_name(template: str, env: str) -> str:
    """A name as the gateway module builds it: name = "gateway-${var.environment}"."""
    return template.replace("${var.name}", f"gateway-{env}")


def test_build_identity_pool_and_secret_match_terraform():
    """The service account, worker pool and smoke secret named here are the ones Terraform makes."""
    gateway = (ROOT / "terraform/modules/gateway/main.tf").read_text()
    assert 'name = "gateway-${var.environment}"' in gateway
    cicd = (ROOT / "terraform/modules/cicd/main.tf").read_text()
    secrets = (ROOT / "terraform/modules/secrets/main.tf").read_text()
    deployer = re.search(r'account_id\s*=\s*"(\$\{var\.name\}-deployer)"', cicd)
    pool = re.search(r'name\s*=\s*"(\$\{var\.name\}-pool)"', cicd)
    smoke_secret = re.search(r'smoke_api_key\s*=\s*"(\$\{var\.name\}-smoke-api-key)"', secrets)
    assert deployer
    assert pool
    assert smoke_secret
    env = "${_ENV}"
    assert f"/{_terraform_name(deployer[1], env)}@" in build()["serviceAccount"]
    assert build()["options"]["pool"]["name"].endswith(f"/{_terraform_name(pool[1], env)}")
    (secret,) = build()["availableSecrets"]["secretManager"]
    assert f"/secrets/{_terraform_name(smoke_secret[1], env)}/" in secret["versionName"]


def test_terraform_variables_come_from_the_build():
    """The root's variables without defaults are given by the build environment."""
    env_vars = {e.split("=", 1)[0] for e in build()["options"]["env"]}
    required = {"project_id", "region", "domain", "notification_email"}
    assert {f"TF_VAR_{v}" for v in required} <= env_vars


def test_migration_env_is_the_functions_connection_settings():
    """The migrate step gets CLOUD_SQL_INSTANCE, DB_IAM_AUTH=true, DB_NAME and the deployer user."""
    outputs = {
        "sql_connection_name": "p:europe-west1:gateway-dev",
        "db_name": "gateway",
        "deployer_db_user": "gateway-dev-deployer@p.iam",
        "function_db_users": {
            "start": "gateway-dev-start@p.iam",
            "batch": "gateway-dev-batch@p.iam",
        },
    }
    env = tfoutputs.migrate_env(outputs)
    assert env["CLOUD_SQL_INSTANCE"] == "p:europe-west1:gateway-dev"
    assert env["DB_IAM_AUTH"] == "true"
    assert env["DB_USER"] == "gateway-dev-deployer@p.iam"
    assert parse_users(env["DB_APP_USERS"]) == [
        "gateway-dev-start@p.iam",
        "gateway-dev-batch@p.iam",
    ]
    with pytest.raises(KeyError, match="first apply"):
        tfoutputs.migrate_env({})


def test_terraform_outputs_feed_the_build():
    """Every output the build reads is an output of each environment root."""
    wanted = {"sql_connection_name", "db_name", "deployer_db_user", "function_db_users"}
    wanted.add("gateway_url")
    for env in ("dev", "prod"):
        text = (ROOT / f"terraform/environments/{env}/outputs.tf").read_text()
        assert wanted <= set(re.findall(r'^output "(\w+)"', text, re.M)), env


def test_grants_quote_users_and_refuse_injection():
    """Grant statements quote each IAM user; a name that is not one is refused."""
    assert bootstrap_statements("gateway-dev-deployer@p.iam") == [
        'GRANT USAGE, CREATE ON SCHEMA public TO "gateway-dev-deployer@p.iam"',
        "CREATE EXTENSION IF NOT EXISTS pgaudit",
    ]
    statements = grant_statements(["gateway-dev-start@p.iam"])
    assert statements[0] == 'GRANT USAGE ON SCHEMA public TO "gateway-dev-start@p.iam"'
    assert any(s.startswith("ALTER DEFAULT PRIVILEGES") for s in statements)
    with pytest.raises(ValueError, match="not an IAM database user"):
        grant_statements(['x"; DROP TABLE conversations; --'])


def test_smoke_checks_health_and_authentication():
    """The smoke test asks each public health route for 200 and an unauthenticated call for 401."""
    checks = smoke.checks_for(api_key=None)
    assert {(c.path, c.expect) for c in checks} == {
        ("/gateway/v1/health/start", 200),
        ("/gateway/v1/health/history", 200),
        ("/gateway/v1/health/admin", 200),
        ("/v1/conversations", 401),
    }
    assert ("/v1/conversations", 200) in {(c.path, c.expect) for c in smoke.checks_for("k")}


def test_smoke_retries_then_reports_a_failure():
    """A check that keeps failing is retried, then reported; one that recovers passes."""
    calls: list[str] = []

    def fetch(url: str, headers: dict[str, str]) -> smoke.Result:
        calls.append(url)
        if url.endswith("/health/start") and len(calls) < 2:
            return smoke.Result(503, b'{"status":"unavailable"}', "application/json")
        if url.endswith("/v1/conversations"):
            return smoke.Result(200, b"{}", "application/json")
        return smoke.Result(200, b'{"status":"ok"}', "application/json")

    checks = smoke.checks_for(None)
    failures = smoke.run_checks(
        "https://gw.example", checks, attempts=3, delay_s=0, fetch=fetch, sleep=lambda _: None
    )
    assert failures == ["no key is refused: status 200, expected 401"]
    assert calls.count("https://gw.example/gateway/v1/health/start") == 2
    assert calls.count("https://gw.example/v1/conversations") == 3


class _FakeRun:
    """The Cloud Run Admin API as far as deploy.revisions uses it."""

    def __init__(self, serving: dict[str, str]) -> None:
        self.serving = serving
        self.patches: list[tuple[str, dict]] = []

    def __call__(self, method: str, url: str, body: dict | None) -> dict | None:
        service = url.split("/services/")[1].split("?")[0]
        if method == "GET":
            if service not in self.serving:
                return None
            revision = self.serving[service]
            return {"latestReadyRevision": f"projects/p/locations/r/revisions/{revision}"}
        assert method == "PATCH"
        assert url.endswith("?updateMask=traffic")
        assert body is not None
        self.patches.append((service, body))
        return {"name": "operations/1"}


def test_revisions_recorded_then_restored_on_rollback(tmp_path):
    """record keeps each serving revision; rollback gives it all traffic; new functions stay."""
    outputs = tmp_path / "tf-outputs.json"
    names = {"start": "gateway-dev-start", "batch": "gateway-dev-batch"}
    outputs.write_text(json.dumps({"function_names": {"value": names}}))
    api = _FakeRun({"gateway-dev-start": "gateway-dev-start-00007-abc"})
    recorded = tmp_path / "revisions.json"
    common = ["--project", "p", "--region", "r", "--tf-outputs", str(outputs)]
    assert revisions.main(["record", *common, "--out", str(recorded)], call=api) == 0
    assert json.loads(recorded.read_text()) == {"start": "gateway-dev-start-00007-abc"}
    api.serving["gateway-dev-start"] = "gateway-dev-start-00008-bad"
    assert revisions.main(["rollback", *common, "--from", str(recorded)], call=api) == 0
    assert api.patches == [
        (
            "gateway-dev-start",
            {
                "traffic": [
                    {
                        "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                        "revision": "gateway-dev-start-00007-abc",
                        "percent": 100,
                    }
                ]
            },
        )
    ]


def test_rollback_after_a_first_deploy_moves_nothing(tmp_path):
    """Before the first apply there are no outputs and no revisions: nothing is patched."""
    outputs = tmp_path / "tf-outputs.json"
    outputs.write_text("{}")
    api = _FakeRun({})
    common = ["--project", "p", "--region", "r", "--tf-outputs", str(outputs)]
    assert revisions.main(["record", *common, "--out", str(tmp_path / "r.json")], call=api) == 0
    assert json.loads((tmp_path / "r.json").read_text()) == {}
    assert revisions.main(["rollback", *common, "--from", str(tmp_path / "r.json")], call=api) == 0
    assert api.patches == []


def test_deploy_guide_walks_the_first_deploy_in_order():
    """docs/deploy.md: policies, DNS and CAA, apply, certificate, pipeline, rollback, in order."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    headings = re.findall(r"^## \d+\. (.+)$", text, re.M)
    wanted = [
        "Organisation policy checks",
        "DNS and CAA",
        "First apply",
        "Certificate activation",
        "First pipeline run",
        "Rollback",
    ]
    found = [next(i for i, h in enumerate(headings) if h.startswith(w)) for w in wanted]
    assert found == sorted(found), headings
    for needed in (
        "iam.allowedPolicyMemberDomains",
        "public_invoker_member",
        'CAA 0 issue "pki.goog"',
        "FAILED_CAA_FORBIDDEN",
        "terraform providers lock",
        "-lockfile=readonly",
        "deploy.revisions rollback",
        "REDIS_TLS_CHECK_HOSTNAME",
        "DB_CONNECT_TIMEOUT_MS",
    ):
        assert needed in text, needed
