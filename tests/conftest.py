"""Fixtures that start or borrow REAL services: PostgreSQL, MariaDB over ODBC, and an OpenSSH sshd.

Nothing here is mocked: the gateway's value lies in talking to real databases and real SFTP drops,
so the tests must fail loudly (``pytest.fail``, never ``skip``) when a service is missing.
Run ``make services`` to install/start them. This module imports ``lidm`` only inside fixtures.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyodbc
import pytest

SERVICES_HINT = "run `make services` to install and start PostgreSQL, MariaDB (+ODBC) and OpenSSH"

# --------------------------------------------------------------------------- PostgreSQL

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


def _pg_admin() -> psycopg.Connection:
    """Autocommit connection to the maintenance database (CREATE/DROP DATABASE can't run in a tx)."""
    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); {SERVICES_HINT}", pytrace=False)


@contextlib.contextmanager
def _throwaway_pg_database(existing: str | None = None) -> Iterator[str]:
    """Create a uniquely named database (or take over `existing`), yield its SQLAlchemy URL, then drop it even if
    still in use."""
    name = existing or f"lidm_test_{secrets.token_hex(4)}"
    if existing is None:
        with _pg_admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with _pg_admin() as admin:
            # Leaked engines/pools would otherwise make DROP DATABASE fail.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One fresh PostgreSQL database shared by the whole session (cheap; tests use own tables)."""
    with _throwaway_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def grants_city(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The demo city with its grants applied and a LOGIN user per tested consumer (tests/_grants_city.py), built once
    a session for test_grants_db.py and test_consumer_contracts.py: each test that changes it puts it back."""
    from _grants_city import built_city

    with built_city(tmp_path_factory.mktemp("grants")) as city:
        yield city


@pytest.fixture
def pg_clean_url() -> Iterator[str]:
    """A fresh PostgreSQL database per test, for tests that need an empty schema (e.g. migrations)."""
    with _throwaway_pg_database() as url:
        yield url


def _migrate_once(home: Path, central_url: str | None) -> None:
    """Migrate a central database with the SDK's own chain only, whatever the environment of the test that happens to
    ask first (a deployment folder or a contracts copy in LIDM_* must not end up in every test's database)."""
    from lidm.central import connect, migrate
    from lidm.config import Settings

    saved = {k: v for k, v in os.environ.items() if k.startswith("LIDM_")}
    for name in saved:
        del os.environ[name]
    try:
        root = Path(__file__).resolve().parents[1]
        settings = Settings(
            home=home, central_url=central_url, contracts_dir=root / "contracts", migrations_dir=home / "none"
        )
        engine = connect(settings)
        try:
            migrate(engine, settings)
        finally:
            engine.dispose()  # SQLite: the last connection closing checkpoints the WAL into the file
    finally:
        os.environ.update(saved)


@pytest.fixture(scope="session")
def _pg_migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated once to the SDK's head, copied (CREATE DATABASE … TEMPLATE) for each test that needs one:
    a copy takes a fraction of a second, running the migrations seconds. The migrations themselves are tested on
    empty databases (test_migrations.py, test_dataset_migrations.py)."""
    with _throwaway_pg_database() as url:
        _migrate_once(tmp_path_factory.mktemp("pg-template"), url)
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def pg_migrated_url(_pg_migrated_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database per test, already at the SDK's newest migration."""
    name = f"lidm_test_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_migrated_template}"')
    with _throwaway_pg_database(name) as url:
        yield url


# ------------------------------------------------------------------ consumer roles (cluster-wide, shared)


def consumer_roles() -> set[str]:
    """The cluster's ``lidm_c_*`` roles: `lidm grants apply` makes one per consumer, and every database shares them."""
    with _pg_admin() as admin:
        return {r for (r,) in admin.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, 'lidm_c_')")}


def _drop_unused_roles(roles: set[str]) -> None:
    with _pg_admin() as admin:
        for role in sorted(roles):
            with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):  # another database uses it
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def drop_consumer_roles_made_since(before: set[str]) -> None:
    """Drop the ``lidm_c_*`` roles made since `before` that no database uses any more.

    Under pytest-xdist another worker may be between creating such a role and granting to it (`apply` of its own
    database), so a worker leaves them and the controlling process drops them once every worker has finished."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    _drop_unused_roles(consumer_roles() - before)


_ROLES_BEFORE = pytest.StashKey[set[str]]()  # the controller's: the roles there were before the run


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") or not getattr(session.config.option, "numprocesses", None):
        return
    with contextlib.suppress(psycopg.OperationalError, pytest.fail.Exception):  # the tests that need it say why
        session.config.stash[_ROLES_BEFORE] = consumer_roles()


def pytest_sessionfinish(session: pytest.Session) -> None:
    before = session.config.stash.get(_ROLES_BEFORE, None)
    if before is not None:
        with contextlib.suppress(psycopg.OperationalError, pytest.fail.Exception):
            _drop_unused_roles(consumer_roles() - before)


# --------------------------------------------------------------------------- MariaDB over ODBC

MARIADB_DRIVER = "MariaDB Unicode"
MARIADB_BASE = f"DRIVER={{{MARIADB_DRIVER}}};SERVER=127.0.0.1;PORT=3306;UID=root;PWD=;CHARSET=utf8mb4"


@dataclass(frozen=True)
class MariaDBDatabase:
    """A throwaway MariaDB database and the two ways the gateway reaches it (raw ODBC, SQLAlchemy)."""

    database: str
    odbc: str
    sqlalchemy_url: str


@pytest.fixture(scope="session")
def mariadb_odbc() -> Iterator[MariaDBDatabase]:
    """Fresh utf8mb4 MariaDB database reached through the real MariaDB ODBC driver (as departments do)."""
    if MARIADB_DRIVER not in pyodbc.drivers():
        pytest.fail(
            f"ODBC driver {MARIADB_DRIVER!r} is not registered (have {pyodbc.drivers()}); {SERVICES_HINT}",
            pytrace=False,
        )
    name = f"lidm_test_{secrets.token_hex(4)}"
    try:
        admin = pyodbc.connect(MARIADB_BASE, autocommit=True, timeout=5)
    except pyodbc.Error as exc:
        pytest.fail(f"MariaDB at 127.0.0.1:3306 is not reachable via ODBC ({exc}); {SERVICES_HINT}", pytrace=False)
    with contextlib.closing(admin):
        admin.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        odbc = f"DRIVER={{{MARIADB_DRIVER}}};SERVER=127.0.0.1;PORT=3306;DATABASE={name};UID=root;PWD=;CHARSET=utf8mb4"
        url = "mariadb+pyodbc:///?odbc_connect=" + urllib.parse.quote_plus(odbc)
        try:
            yield MariaDBDatabase(database=name, odbc=odbc, sqlalchemy_url=url)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS `{name}`")


# --------------------------------------------------------------------------- OpenSSH sshd

SFTP_USER = "lidmdrop"


@dataclass(frozen=True)
class SFTPServer:
    """A running sshd with a drop user; paths point at throwaway keys and known_hosts files."""

    host: str
    port: int
    username: str
    client_key: Path
    known_hosts: Path
    wrong_known_hosts: Path
    home: Path

    def url(self, path: str) -> str:
        """``sftp://`` URL for ``path`` (leading ``/`` optional) with pinned key and known_hosts."""
        query = urllib.parse.urlencode({"key_file": str(self.client_key), "known_hosts": str(self.known_hosts)})
        return f"sftp://{self.username}@{self.host}:{self.port}/{path.lstrip('/')}?{query}"


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def _ensure_drop_user() -> pwd.struct_passwd:
    """Create the unprivileged drop user; '*' unlocks it for key auth without allowing any password."""
    try:
        pwd.getpwnam(SFTP_USER)
    except KeyError:
        # Tolerate a concurrent session having created it in the meantime (useradd exit 9).
        subprocess.run(["useradd", "-m", SFTP_USER], check=False, capture_output=True)
    _run("usermod", "-p", "*", SFTP_USER)
    return pwd.getpwnam(SFTP_USER)


def _keygen(path: Path) -> str:
    """Generate an ed25519 key pair; return the public key as ``type base64`` (comment dropped)."""
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lidm-test", "-f", str(path))
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sftp_server() -> Iterator[SFTPServer]:
    """Real /usr/sbin/sshd on a free loopback port, so host-key pinning and key auth are truly exercised."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists() or shutil.which("ssh-keygen") is None:
        pytest.fail(f"OpenSSH server not installed; {SERVICES_HINT}", pytrace=False)
    user = _ensure_drop_user()
    home = Path(user.pw_dir)
    outbox = home / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    os.chown(outbox, user.pw_uid, user.pw_gid)
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # sshd's privsep chroot

    # Not under pytest's tmp (mode 0700): sshd reads authorized_keys as the drop user.
    tmp = Path(tempfile.mkdtemp(prefix="lidm-sshd-"))
    tmp.chmod(0o755)
    proc = None
    try:
        host_pub = _keygen(tmp / "host_ed25519")
        wrong_pub = _keygen(tmp / "wrong_host_ed25519")
        client_pub = _keygen(tmp / "client_ed25519")
        authorized = tmp / "authorized_keys"
        authorized.write_text(client_pub + "\n")
        authorized.chmod(0o644)

        port = _free_port()
        (tmp / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
        (tmp / "wrong_known_hosts").write_text(f"[127.0.0.1]:{port} {wrong_pub}\n")
        config = tmp / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {tmp / 'host_ed25519'}\nPidFile {tmp / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n"
        )
        log_path = tmp / "sshd.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"sshd did not listen on 127.0.0.1:{port} (exit={proc.poll()}):\n{log_path.read_text()}",
                    pytrace=False,
                )
            time.sleep(0.1)

        yield SFTPServer(
            host="127.0.0.1",
            port=port,
            username=SFTP_USER,
            client_key=tmp / "client_ed25519",
            known_hosts=tmp / "known_hosts",
            wrong_known_hosts=tmp / "wrong_known_hosts",
            home=home,
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- misc


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests drop screenshots/reports for CI to upload (git-ignored)."""
    path = Path("test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- lidm settings


@dataclass
class Gateway:
    """A gateway configuration for one test: its own home, keyring and central database."""

    home: Path
    central_url: str | None

    @property
    def settings(self):
        from lidm.config import Settings

        return Settings(home=self.home, central_url=self.central_url, keyring=self.home / "keyring.json")


def _gateway(home: Path, central_url: str | None) -> Gateway:
    from lidm.keys import generate_keyring, write_keyring

    home.mkdir(parents=True, exist_ok=True)
    write_keyring(generate_keyring(), home / "keyring.json")
    return Gateway(home, central_url)


@pytest.fixture(scope="session")
def _sqlite_migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded central database migrated once to the SDK's head; each gateway_sqlite starts from a copy."""
    home = tmp_path_factory.mktemp("sqlite-template")
    _migrate_once(home, None)
    return home / "central.db"


@pytest.fixture
def gateway_sqlite(tmp_path: Path, _sqlite_migrated_template: Path) -> Gateway:
    """Embedded default: SQLite central database under tmp_path, already at the SDK's newest migration."""
    gateway = _gateway(tmp_path / "gw-sqlite", None)
    target = gateway.home / "central.db"
    shutil.copyfile(_sqlite_migrated_template, target)
    target.chmod(0o600)
    return gateway


@pytest.fixture
def gateway_pg(tmp_path: Path, pg_migrated_url: str) -> Gateway:
    """PostgreSQL central database, fresh per test, already at the SDK's newest migration."""
    return _gateway(tmp_path / "gw-pg", pg_migrated_url)


# --------------------------------------------------------------------------- Airflow


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """Environment of a fresh Airflow home with a migrated SQLite metadata database: migrated once per session, here
    rather than in a test module (a fixture imported into another module would be set up once more there)."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIDM_"))} | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[1] / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # OdbcHook only uses the driver named in a connection's extra when this is on.
        "AIRFLOW__PROVIDERS_ODBC__ALLOW_DRIVER_IN_EXTRA": "True",
    }
    out = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return env
