"""docker-compose.yml cannot be started here (no Docker engine), so its structure is checked instead: the
services a deployment needs, one Airflow image for every Airflow service, health-gated start-up, no
literal secrets, and every file it names present in the repository."""

from __future__ import annotations

import json
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
AIRFLOW_SERVICES = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
# ${NAME}, ${NAME:-default}, ${NAME:?message}; `$${NAME}` is an escaped dollar, left to the container's shell
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
ONLY_VAR = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|JWT|TOKEN|PRIVATE|_KEY$", re.I)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


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


def test_services_of_a_first_deployment(compose):
    services = compose["services"]
    assert {"postgres", "health-db", "civil-affairs-sftp", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["health-db"]["image"].startswith("mariadb:")
    assert services["civil-affairs-sftp"]["image"].split(":")[0] in ("atmoz/sftp", "linuxserver/openssh-server")
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-api-server": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }
    assert _env(services["airflow-scheduler"])["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_airflow_services_share_one_image_and_mount_the_dags(compose):
    services = compose["services"]
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        svc = services[name]
        assert svc["image"] == services["airflow-scheduler"]["image"], name
        assert svc["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}, name
        mounts = {m.split(":")[1]: m.split(":")[0] for m in svc["volumes"] if isinstance(m, str)}
        assert mounts["/opt/airflow/dags"] == "./dags", name
        assert mounts["/opt/airflow/plugins"] == "./plugins", name


def test_start_up_waits_for_healthy_databases(compose):
    services = compose["services"]
    for name in ("postgres", "health-db"):
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    assert services["airflow-init"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}, name
        assert deps["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert "healthcheck" in services[name], name


def test_postgres_init_creates_both_databases(compose):
    mounts = compose["services"]["postgres"]["volumes"]
    assert "./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/10-lidm.sql:ro" in mounts
    sql = (ROOT / "deploy" / "postgres-init.sql").read_text("utf-8")
    assert "CREATE DATABASE airflow" in sql and "CREATE DATABASE central" in sql
    assert "\\getenv" in sql and "PASSWORD '" not in sql, "passwords come from the environment, not the file"
    env = _env(compose["services"]["postgres"])
    assert {"AIRFLOW_DB_PASSWORD", "CENTRAL_DB_PASSWORD"} <= set(env)


def test_no_literal_secrets(compose):
    for path, text in _strings(compose):
        assert "PRIVATE KEY" not in text and not re.search(r"ssh-(ed25519|rsa) AAAA", text), path
        for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", text):  # user:password@host in URLs
            assert ONLY_VAR.match(password), f"{path}: literal password in a URL"
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
    for key, value in example.items():
        if SECRET_NAME.search(key) and not key.endswith("_FILE"):
            assert "change-me" in value or "replace" in value, f"{key}: env.example holds placeholders only"


def test_every_referenced_file_exists(compose):
    assert ENV_EXAMPLE.exists()
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        for mount in svc.get("volumes") or []:
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text("utf-8")
    for source in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", dockerfile, re.M):
        for part in source.split():
            assert (ROOT / part).exists(), f"Dockerfile copies {part}"


def test_image_is_airflow_3_on_python_311_with_the_mariadb_driver():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text("utf-8")
    (pinned,) = re.findall(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, re.M)
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python3\.11$", dockerfile, re.M)
    assert pinned.startswith("3.")
    assert pinned == version("apache-airflow"), "the image runs the Airflow the tests run"
    assert "odbc-mariadb" in dockerfile and "unixodbc" in dockerfile
    assert '"/opt/lidm[airflow]"' in dockerfile


def test_a_non_editable_install_ships_every_sdk_package():
    """The image installs the project as a wheel, where only the listed packages exist."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(("lidm", *p.parent.relative_to(ROOT / "sdk" / "lidm").parts))
        for p in (ROOT / "sdk" / "lidm").rglob("__init__.py")
    }
    assert on_disk <= listed, f"not packaged: {sorted(on_disk - listed)}"


def test_the_env_file_with_the_secrets_is_never_committed():
    out = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True)
    assert out.returncode == 0, "add .env to .gitignore"
