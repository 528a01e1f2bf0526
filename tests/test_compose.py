"""docker-compose.yml cannot be started here (no Docker engine), so its structure is checked instead: the
services of an Airflow 3 CeleryExecutor deployment, one Airflow image for every Airflow service, health-gated
start-up, each secret only where it is needed (tasks run on the worker), connections and pools matching what
the DAGs use, no literal secrets, and every file, volume and secret it names present or declared."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# what the deployment is made of -> the service playing that part
ROLES = {
    "api-server": "airflow-api-server",
    "scheduler": "airflow-scheduler",
    "dag-processor": "airflow-dag-processor",
    "triggerer": "airflow-triggerer",
    "worker": "airflow-worker",
    "redis": "redis",
    "postgres": "postgres",
    "sftp": "civil-affairs-sftp",
    "mariadb": "health-db",
}
AIRFLOW_SERVICES = tuple(ROLES[r] for r in ("api-server", "scheduler", "dag-processor", "triggerer", "worker"))
WORKER, SCHEDULER, API, TRIGGERER, DAG_PROCESSOR = (
    ROLES["worker"],
    ROLES["scheduler"],
    ROLES["api-server"],
    ROLES["triggerer"],
    ROLES["dag-processor"],
)
CELERY_PING = "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping"
# ${NAME}, ${NAME:-default}, ${NAME:?message}; `$${NAME}` is an escaped dollar, left to the container's shell
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
ONLY_VAR = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}$")
REQUIRED_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|JWT|TOKEN|PRIVATE|_KEY$", re.I)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _mounts(service: dict) -> dict[str, tuple[str, str]]:
    """target -> (source, options) of the short-syntax volumes."""
    out = {}
    for m in service.get("volumes") or []:
        source, target, *opts = VAR.sub(lambda v: v.group(0).replace(":", "\0"), m).split(":")
        out[target] = (source.replace("\0", ":"), ",".join(opts))
    return out


def _conns(service: dict) -> dict[str, dict]:
    """conn id -> the AIRFLOW_CONN_* JSON with every ${...} reference replaced by `x`."""
    return {
        key.removeprefix("AIRFLOW_CONN_").lower(): json.loads(VAR.sub("x", value))
        for key, value in _env(service).items()
        if key.startswith("AIRFLOW_CONN_")
    }


def _secrets(service: dict) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets") or []}


def _is_airflow(service: dict) -> bool:
    return str(service.get("image", "")).startswith("lidm-airflow:")


def _strings(node, path=""):
    """Every string in the document with where it is (keys included)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}", str(k)
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def _nodes(node, path=""):
    """Every dict and list in a document, with where it is."""
    yield path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from _nodes(v, f"{path}.{k}")


def _sftp_accounts(service: dict) -> dict[str, list[str]]:
    """atmoz/sftp users from its command (`user:pass:uid:gid:dir1,dir2`) -> their folders."""
    accounts = {}
    for spec in service["command"]:
        user, _pw, _uid, _gid, dirs = (spec.split(":") + [""] * 5)[:5]
        accounts[user] = [d for d in dirs.split(",") if d]
    return accounts


def _dag_conn_ids() -> tuple[set[str], set[str], set[str]]:
    """(adapter source connections, drop connections, monitoring channel connections)."""
    from lidm.integrations.airflow.hooks import channel_conn_id
    from lidm.integrations.airflow.monitor_dags import departments
    from lidm.registry import adapters
    from lidm.sources import DropSource

    found = adapters().values()
    return (
        {a.source.connection for a in found},
        {a.source.connection for a in found if isinstance(a.source, DropSource)},
        {channel_conn_id(d) for d in departments()},
    )


# --------------------------------------------------------------------------- services


def test_services_of_a_celery_deployment(services):
    missing = {role: name for role, name in ROLES.items() if name not in services}
    assert not missing, f"services missing: {missing}"
    assert "airflow-init" in services
    assert services[ROLES["postgres"]]["image"].startswith("postgres:")
    assert services[ROLES["redis"]]["image"].startswith("redis:")
    assert services[ROLES["mariadb"]]["image"].startswith("mariadb:")
    assert services[ROLES["sftp"]]["image"].split(":")[0] in ("atmoz/sftp", "linuxserver/openssh-server")
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        API: "api-server",
        SCHEDULER: "scheduler",
        DAG_PROCESSOR: "dag-processor",
        TRIGGERER: "triggerer",
        WORKER: "celery worker",
    }


def test_the_executor_is_celery_everywhere(services):
    airflow = [name for name, svc in services.items() if _is_airflow(svc)]
    assert set(AIRFLOW_SERVICES) | {"airflow-init"} <= set(airflow)
    for name in airflow:
        assert _env(services[name]).get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", name


def test_airflow_services_share_one_image_and_mount_dags_plugins_contracts_and_rules(services):
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        svc = services[name]
        assert svc["image"] == services[SCHEDULER]["image"], name
        assert svc["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}, name
        by_source = {src: (target, opts) for target, (src, opts) in _mounts(svc).items()}
        assert by_source["./dags"] == ("/opt/airflow/dags", "ro"), name
        assert by_source["./plugins"] == ("/opt/airflow/plugins", "ro"), name
        env = _env(svc)
        for folder, variable in (("./contracts", "LIDM_CONTRACTS_DIR"), ("./rules", "LIDM_RULES_DIR")):
            assert folder in by_source, f"{name}: {folder} is not mounted"
            target, opts = by_source[folder]
            assert opts == "ro", f"{name}: {folder} must be read-only"
            assert env.get(variable) == target, f"{name}: {variable} must point at the mounted {folder}"


def test_the_mounted_contracts_and_rules_are_what_the_dags_load():
    from lidm.contracts import load_catalog
    from lidm.monitor.rules import load_rules

    catalog = load_catalog(ROOT / "contracts")
    assert load_rules(ROOT / "rules", catalog=catalog)
    assert catalog["platform.warning"].field("target_department").enum


# --------------------------------------------------------------------------- celery


def test_celery_broker_and_result_backend(services):
    airflow_db = _env(services[SCHEDULER])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("://", 1)[1]
    for name in (SCHEDULER, WORKER):
        env = _env(services[name])
        assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379/\d+", env["AIRFLOW__CELERY__BROKER_URL"])
        backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert backend.startswith("db+postgresql://"), name
        assert backend.split("://", 1)[1] == airflow_db, f"{name}: results go to Airflow's metadata database"
    for name in (API, DAG_PROCESSOR, TRIGGERER, "airflow-init"):
        assert "AIRFLOW__CELERY__BROKER_URL" not in _env(services[name]), f"{name} sends no task to the broker"


def test_redis_requires_its_password_and_is_not_published(services):
    redis = services[ROLES["redis"]]
    env = _env(redis)
    assert REQUIRED_VAR.match(env["REDIS_PASSWORD"]).group(1) == "REDIS_PASSWORD"
    assert "--requirepass" in " ".join(redis["command"]) and "$${REDIS_PASSWORD}" in " ".join(redis["command"])
    assert env.get("REDISCLI_AUTH") == env["REDIS_PASSWORD"], "the healthcheck must authenticate"
    assert "ports" not in redis


def test_healthchecks(services):
    for name in ("postgres", "health-db", "redis", *AIRFLOW_SERVICES):
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])
    worker_check = services[WORKER]["healthcheck"]["test"]
    assert worker_check[0] == "CMD-SHELL"
    assert worker_check[1].startswith(CELERY_PING) and '-d "celery@$${HOSTNAME}"' in worker_check[1]
    assert _env(services[WORKER]).get("DUMB_INIT_SETSID") == "0", "warm shutdown of the Celery worker"


def test_start_up_waits_for_healthy_dependencies(services):
    assert services["airflow-init"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}, name
        assert deps["airflow-init"] == {"condition": "service_completed_successfully"}, name
    for name in (SCHEDULER, WORKER):
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    assert services[WORKER]["depends_on"][API] == {"condition": "service_healthy"}, "tasks call the execution API"


# --------------------------------------------------------------------------- who gets what


def test_tasks_run_on_the_worker_with_the_keyring_and_the_central_database(compose, services):
    worker = services[WORKER]
    env = _env(worker)
    assert "lidm_keyring" in _secrets(worker)
    assert env["LIDM_KEYRING"] == "/run/secrets/lidm_keyring"
    assert env["LIDM_CENTRAL_URL"].startswith("postgresql+psycopg://")
    # channels that default to folders under LIDM_HOME survive restarts: LIDM_HOME is a named volume
    home, _ = _mounts(worker)[env["LIDM_HOME"]]
    assert home in (compose.get("volumes") or {}), "LIDM_HOME must be a named volume"


def test_the_keyring_reaches_the_worker_and_the_init_only(services):
    """The init needs it once: `grants apply` fills the consumers' released tables with their pseudonyms."""
    for name, svc in services.items():
        if name in (WORKER, "airflow-init"):
            continue
        assert "lidm_keyring" not in _secrets(svc), name
        assert not {"LIDM_KEYRING", "LIDM_KEYRING_JSON"} & set(_env(svc)), name
    for name in (SCHEDULER, DAG_PROCESSOR):
        env = _env(services[name])
        assert "LIDM_CENTRAL_URL" not in env, f"{name} runs no task"
        assert not _conns(services[name]), f"{name} runs no task"
        assert not _secrets(services[name]), name


def test_three_roles_the_owner_migrates_and_grants_the_service_logs_in_as_the_loader(services):
    init = services["airflow-init"]
    env = _env(init)
    assert "lidm_keyring" in _secrets(init) and env["LIDM_KEYRING"] == "/run/secrets/lidm_keyring"
    assert env["LIDM_ADMIN_URL"].startswith("postgresql+psycopg://lidm_owner:")
    assert env["LIDM_LOADER_ROLE"] == "lidm_loader"
    script = init["command"][-1]
    assert script.index("lidm db upgrade") < script.index("lidm grants apply")
    for name, svc in services.items():
        senv = _env(svc)
        if name != "airflow-init":
            assert "LIDM_ADMIN_URL" not in senv, f"{name} must not hold the owner's login"
        if "LIDM_CENTRAL_URL" in senv:
            assert senv["LIDM_CENTRAL_URL"].startswith("postgresql+psycopg://lidm_loader:"), name
    sql = (ROOT / "deploy" / "postgres-init.sql").read_text("utf-8")
    assert "CREATE ROLE lidm_owner LOGIN CREATEROLE" in sql and "CREATE DATABASE central OWNER lidm_owner" in sql
    (loader,) = [line for line in sql.splitlines() if line.startswith("CREATE ROLE lidm_loader")]
    assert "CREATEROLE" not in loader and "SUPERUSER" not in loader


def test_the_api_server_reads_the_central_database_for_the_feeds_page(services):
    api = services[API]
    assert _env(api)["LIDM_CENTRAL_URL"] == _env(services[WORKER])["LIDM_CENTRAL_URL"]
    assert not _conns(api) and not _secrets(api)


def test_the_triggerer_gets_the_drop_connections_only(services):
    _, drops, _ = _dag_conn_ids()
    triggerer = services[TRIGGERER]
    conns = _conns(triggerer)
    assert conns and set(conns) <= drops
    assert "LIDM_CENTRAL_URL" not in _env(triggerer)
    assert set(conns) == drops & set(_conns(services[WORKER])), "every drop the worker loads is waited for"


def test_every_connection_names_a_conn_id_the_dags_use(services):
    sources, _, channels = _dag_conn_ids()
    for name, svc in services.items():
        for conn_id, conn in _conns(svc).items():
            assert conn_id in sources | channels, f"{name}: no DAG uses a connection {conn_id}"
            assert conn["conn_type"] in ("sftp", "odbc", "postgres", "sqlite", "fs"), f"{name}: {conn_id}"
            assert conn.get("host") in (None, *services), f"{name}: {conn_id} points at an unknown host"
    worker = _conns(services[WORKER])
    for name, svc in services.items():
        assert set(_conns(svc)) <= set(worker), f"{name} has a connection the worker (which runs tasks) lacks"
    assert worker.keys() & sources, "the worker needs the source connections"


def test_civil_affairs_channel_is_an_sftp_connection(services):
    raw = _env(services[WORKER])["AIRFLOW_CONN_LIDM_CHANNEL_CIVIL_AFFAIRS"]
    conn = json.loads(VAR.sub("x", raw))
    assert conn["conn_type"] == "sftp" and conn["host"] and conn["login"]
    assert {"key_file", "host_key", "path"} <= set(conn["extra"])
    assert ONLY_VAR.match(json.loads(raw)["extra"]["host_key"]), "the host key is pinned from .env"


def test_sftp_connections_match_the_stand_in_server(services):
    """Each SFTP login has an account whose folders hold the path, a key the container mounts, and the server
    authorizes a public key for it."""
    server_name = ROLES["sftp"]
    server = services[server_name]
    accounts = _sftp_accounts(server)
    targets = _mounts(server)
    for name, svc in services.items():
        for conn_id, conn in _conns(svc).items():
            if conn["conn_type"] != "sftp":
                continue
            extra = conn["extra"]
            secret = extra["key_file"].removeprefix("/run/secrets/")
            assert secret in _secrets(svc), f"{name}: {conn_id} key_file is not a secret of the service"
            if conn["host"] != server_name:
                continue
            login, path = conn["login"], extra["path"].strip("/")
            assert login in accounts, f"{conn_id}: no account {login} on {server_name}"
            assert any(d == path or d.startswith(path + "/") for d in accounts[login]), f"{conn_id}: {path}"
            assert any(t.startswith(f"/home/{login}/.ssh/keys/") for t in targets), f"{login}: no authorized key"


# --------------------------------------------------------------------------- pools


def test_init_creates_a_pool_per_adapter_pool_and_department_without_overwriting(services, tmp_path):
    from lidm.integrations.airflow.monitor_dags import departments
    from lidm.registry import adapters

    init = services["airflow-init"]
    script = init["command"][-1]
    (snippet,) = re.findall(r'python -c "([^"]+)"', script)
    assert re.search(r'airflow pools get "\$\$pool"[^\n]*\|\|\s*airflow pools set "\$\$pool"', script)
    mounted = {target: src for target, (src, _) in _mounts(init).items()}[_env(init)["LIDM_CONTRACTS_DIR"]]
    # the mounted contracts plus a department that has no adapter (and so no adapter pool) yet
    contracts = tmp_path / "contracts"
    shutil.copytree(ROOT / mounted, contracts)
    warning = contracts / "platform" / "warning.yaml"
    doc = yaml.safe_load(warning.read_text("utf-8"))
    (field,) = [node for _, node in _nodes(doc) if isinstance(node, dict) and node.get("name") == "target_department"]
    field["enum"].append({"value": "street_office", "label": "街道"})
    warning.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")

    env = {**os.environ, "LIDM_CONTRACTS_DIR": str(contracts)}
    out = subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True, text=True, check=True)
    pools = set(out.stdout.split())
    needed = {a.pool for a in adapters().values() if a.pool} | set(departments()) | {"street_office"}
    assert needed <= pools, f"no pool for {sorted(needed - pools)}"


# --------------------------------------------------------------------------- secrets and files


def test_no_literal_secrets(compose):
    for path, text in _strings(compose):
        assert "PRIVATE KEY" not in text and not re.search(r"ssh-(ed25519|rsa) AAAA", text), path
        masked = VAR.sub("\0", text)
        for password in re.findall(r"://[^:/@\s]*:([^@\s]*)@", masked):  # [user]:password@host in URLs
            assert password == "\0", f"{path}: literal password in a URL"
        if text.lstrip().startswith("{"):  # JSON connections
            conn = json.loads(VAR.sub("x", text))
            assert "password" not in conn or ONLY_VAR.match(json.loads(text)["password"]), path
            for key in conn.get("extra") or {}:
                if SECRET_NAME.search(key) or key in ("host_key", "private_key"):
                    assert ONLY_VAR.match(json.loads(text)["extra"][key]), f"{path}: extra {key}"
    for name, svc in compose["services"].items():
        for key, value in _env(svc).items():
            if SECRET_NAME.search(key):
                assert ONLY_VAR.match(value), f"{name}: {key} must be a ${{...}} reference"


def test_every_variable_is_documented_in_the_example_env(compose):
    text = COMPOSE.read_text("utf-8")
    required = {m.group(1) for m in VAR.finditer(text) if m.group(2) != ":-"}
    example = {}
    for line in ENV_EXAMPLE.read_text("utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    assert required <= set(example), f"not in deploy/env.example: {sorted(required - set(example))}"
    assert "REDIS_PASSWORD" in example
    for key, value in example.items():
        if SECRET_NAME.search(key) and not key.endswith("_FILE"):
            assert "change-me" in value or "replace" in value, f"{key}: env.example holds placeholders only"


def test_every_volume_secret_and_file_exists_or_is_declared(compose):
    assert ENV_EXAMPLE.exists()
    declared_volumes = set(compose.get("volumes") or {})
    declared_secrets = compose.get("secrets") or {}
    used_volumes, used_secrets = set(), set()
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        assert "env_file" not in svc, f"{name}: secrets come through ${{...}} references, not env files"
        for target, (source, _) in _mounts(svc).items():
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
            elif source.startswith("${"):
                assert REQUIRED_VAR.match(source), f"{name}: {source} must be required (:?)"
            else:
                assert source in declared_volumes, f"{name}: volume {source} is not declared"
                used_volumes.add(source)
            assert target.startswith("/"), f"{name}: {target}"
        for secret in _secrets(svc):
            assert secret in declared_secrets, f"{name}: secret {secret} is not declared"
            used_secrets.add(secret)
    assert used_volumes == declared_volumes, f"declared but unused: {sorted(declared_volumes - used_volumes)}"
    assert used_secrets == set(declared_secrets), f"declared but unused: {sorted(set(declared_secrets) - used_secrets)}"
    for secret, spec in declared_secrets.items():
        source = spec["file"]
        assert REQUIRED_VAR.match(source) or (ROOT / source).is_file(), f"secret {secret}: {source}"
    for source in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", DOCKERFILE.read_text("utf-8"), re.M):
        for part in source.split():
            assert (ROOT / part).exists(), f"Dockerfile copies {part}"


def test_postgres_init_creates_both_databases(services):
    mounts = services["postgres"]["volumes"]
    assert "./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/10-lidm.sql:ro" in mounts
    sql = (ROOT / "deploy" / "postgres-init.sql").read_text("utf-8")
    assert "CREATE DATABASE airflow" in sql and "CREATE DATABASE central" in sql
    assert "\\getenv" in sql and "PASSWORD '" not in sql, "passwords come from the environment, not the file"
    env = _env(services["postgres"])
    assert {"AIRFLOW_DB_PASSWORD", "CENTRAL_DB_PASSWORD", "CENTRAL_OWNER_PASSWORD"} <= set(env)


# --------------------------------------------------------------------------- the image


def test_image_is_airflow_3_on_python_311_with_celery_and_the_mariadb_driver():
    dockerfile = DOCKERFILE.read_text("utf-8")
    (pinned,) = re.findall(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, re.M)
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python3\.11$", dockerfile, re.M)
    assert pinned.startswith("3.")
    assert pinned == version("apache-airflow"), "the image runs the Airflow the tests run"
    assert "odbc-mariadb" in dockerfile and "unixodbc" in dockerfile
    assert '"/opt/lidm[airflow]"' in dockerfile
    # the celery provider with Celery's redis transport, resolved within this Airflow release's constraints
    assert '"apache-airflow-providers-celery"' in dockerfile and '"celery[redis]"' in dockerfile
    assert re.search(r"constraints-\$\{AIRFLOW_VERSION\}/constraints-3\.11\.txt", dockerfile)
    celery_install = next(block for block in dockerfile.split("\nRUN ") if "apache-airflow-providers-celery" in block)
    assert "--constraint" in celery_install and '"apache-airflow==${AIRFLOW_VERSION}"' in celery_install


def test_a_non_editable_install_ships_every_sdk_package():
    """The image installs the project as a wheel, where only the listed packages exist."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    listed = set(project["packages"])
    on_disk = {
        ".".join(("lidm", *p.parent.relative_to(ROOT / "sdk" / "lidm").parts))
        for p in (ROOT / "sdk" / "lidm").rglob("__init__.py")
    }
    assert on_disk <= listed, f"not packaged: {sorted(on_disk - listed)}"
    # every package folder the wheel is built from is copied into the image
    copied = {
        part
        for source in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", DOCKERFILE.read_text("utf-8"), re.M)
        for part in source.split()
    }
    missing = {d for d in project["package-dir"].values() if d.split("/")[0] not in copied}
    assert not missing, f"the Dockerfile does not COPY {sorted(missing)}"


def test_the_env_file_with_the_secrets_is_never_committed():
    out = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True)
    assert out.returncode == 0, "add .env to .gitignore"
