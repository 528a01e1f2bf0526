"""A deployment's own migrations: a new dataset's table comes from `lidm db revision`, lands in LIDM_MIGRATIONS_DIR
(never in the SDK) on a branch of its own, and `lidm db upgrade` applies it beside the SDK's, on SQLite and
PostgreSQL; before it exists, the feed says which table is missing and which commands make it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from lidm import cli
from lidm.central import db, full_metadata
from lidm.central.revision import write_revision
from lidm.config import Settings, get_settings
from lidm.contracts import load_catalog
from lidm.errors import CentralSchemaBehind, ConfigError, retryable
from lidm.pipeline import run_feed
from lidm.registry import refresh
from lidm.testkit import FAIL, verify

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "sdk" / "lidm" / "central" / "migrations"
NEW = "veterans.entitled_persons"
TABLE = "veterans_entitled_persons"
ROSTER = "civil_affairs.low_income_roster"

runner = CliRunner()


def _new_dataset(contracts: Path) -> None:
    """The roster's contract again, as the veterans' affairs bureau's register of entitled persons."""
    text = (contracts / "civil_affairs" / "low_income_roster.yaml").read_text("utf-8")
    for old, new in (
        (ROSTER, NEW),
        ("civil_affairs_low_income_roster", TABLE),
        ("dataProduct: low_income_roster", "dataProduct: entitled_persons"),
        ("  - name: low_income_roster\n", "  - name: entitled_persons\n"),
        ("domain: civil_affairs", "domain: veterans"),
        ("team:\n  name: civil_affairs", "team:\n  name: veterans"),
        ("{property: lidmOwner, value: civil_affairs}", "{property: lidmOwner, value: veterans}"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    (contracts / "veterans").mkdir()
    (contracts / "veterans" / "entitled_persons.yaml").write_text(text, "utf-8")


def _new_adapter(into: Path) -> None:
    """Its adapter: the roster's, reading the same drops (a department's file under adapters/veterans/)."""
    folder = into / "veterans"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    text = (ROOT / "adapters" / "civil_affairs" / "low_income_roster.py").read_text("utf-8")
    (folder / "entitled_persons.py").write_text(text.replace(f'contract="{ROSTER}"', f'contract="{NEW}"'), "utf-8")


def _sdk_migrations() -> dict[str, bytes]:
    return {
        str(p.relative_to(CORE)): p.read_bytes() for p in sorted(CORE.rglob("*.py*")) if "__pycache__" not in p.parts
    }


def _git_status(path: Path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--", str(path)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def _text(out) -> str:  # type: ignore[no-untyped-def]
    return " ".join(out.output.split())


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """An operator's shell: a copy of the contracts plus the new one, its adapter, and the deployment's migrations
    folder (not even made yet)."""
    import lidm_adapters

    contracts = tmp_path / "contracts"
    shutil.copytree(ROOT / "contracts", contracts)
    _new_dataset(contracts)
    _new_adapter(tmp_path / "adapters")
    monkeypatch.setattr(lidm_adapters, "__path__", [*lidm_adapters.__path__, str(tmp_path / "adapters")])
    refresh()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIDM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIDM_CONTRACTS_DIR", str(contracts))
    monkeypatch.setenv("LIDM_MIGRATIONS_DIR", str(tmp_path / "migrations"))
    for name in ("LIDM_CENTRAL_URL", "LIDM_ADMIN_URL", "LIDM_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli.console, "width", 200)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    for name in [m for m in sys.modules if m.startswith("lidm_adapters.veterans")]:
        del sys.modules[name]  # the next test that adds a veterans adapter reads its own
    refresh()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_new_dataset_gets_its_table_from_a_migration_of_the_deployment(deployment, backend, request, monkeypatch):
    if backend == "postgres":
        monkeypatch.setenv("LIDM_CENTRAL_URL", request.getfixturevalue("pg_clean_url"))
        get_settings.cache_clear()
    migrations = deployment / "migrations"
    sdk_before, git_before = _sdk_migrations(), _git_status(CORE)
    assert runner.invoke(cli.app, ["keys", "init"]).exit_code == 0
    sample = runner.invoke(cli.app, ["sample", "--size", "200", "--dataset", ROSTER, "--out", "sources"])
    assert sample.exit_code == 0, sample.output
    run = ["run", NEW, "--connections", "sources/connections.json"]

    (sdk_head,) = db.heads(get_settings())  # the deployment's folder does not exist yet: the SDK's chain alone
    upgraded = runner.invoke(cli.app, ["db", "upgrade"])
    assert upgraded.exit_code == 0 and f"({sdk_head})" in upgraded.output, upgraded.output
    engine = db.connect(get_settings())
    try:
        with engine.connect() as conn:
            tables_before = set(sa.inspect(conn).get_table_names())
        assert TABLE not in tables_before

        # Before the migration exists: the feed names the missing table and the two commands, and is not retried.
        refused = runner.invoke(cli.app, run)
        text = _text(refused)
        assert refused.exit_code == 2, refused.output
        assert f"table {TABLE} does not exist" in text, text
        assert f'`lidm db revision -m "{NEW}"`' in text and "then `lidm db upgrade`" in text, text
        assert "retried" not in text and "connection was lost" not in text, text
        with pytest.raises(CentralSchemaBehind, match=TABLE) as caught:
            run_feed(NEW, get_settings(), connections=json.loads(Path("sources/connections.json").read_text()))
        assert not retryable(caught.value)
        checked = verify(NEW, connections=json.loads(Path("sources/connections.json").read_text()))
        loads = next(c for c in checked.checks if c.name == "loads")
        assert loads.status == FAIL and f"table {TABLE} does not exist" in loads.detail, loads.detail
        assert "`lidm db revision" in loads.detail and "`lidm db upgrade`" in loads.detail

        written = runner.invoke(cli.app, ["db", "revision", "-m", "veterans entitled persons"])
        assert written.exit_code == 0, written.output
        files = sorted(migrations.glob("*.py"))
        assert [f.name for f in files] == ["datasets_0001_veterans_entitled_persons.py"], files
        assert f"wrote {files[0]}" in _text(written)
        source = files[0].read_text("utf-8")
        assert "branch_labels = ('datasets',)" in source and "down_revision = None" in source
        assert f"depends_on = '{sdk_head}'" in source
        upgrade = source[source.index("def upgrade") : source.index("def downgrade")]
        assert re.findall(r"op\.create_table\('(\w+)'", upgrade) == [TABLE]  # exactly the new table, nothing else
        # the household token a rule may join on (`on: household`) is indexed as on the SDK's tables (0022)
        assert re.search(rf"create_index\('ix_{TABLE}_hhtok', \['household_id_token'\]", upgrade), upgrade
        assert set(re.findall(r"\bop\.(?!f\()\w+\('(\w+)'", upgrade)) == {TABLE}  # every table it names
        assert _sdk_migrations() == sdk_before and _git_status(CORE) == git_before  # nothing under sdk/

        upgraded = runner.invoke(cli.app, ["db", "upgrade"])
        assert upgraded.exit_code == 0 and f"({sdk_head}, datasets_0001)" in upgraded.output, upgraded.output
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) - tables_before == {TABLE}
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}),
                full_metadata(load_catalog(get_settings().contracts_dir)),
            )
        assert diff == [], diff  # the table the contract describes, on this database too
        assert db.is_current(engine, get_settings())

        again = runner.invoke(cli.app, ["db", "revision", "-m", "again"])
        assert again.exit_code == 0 and "nothing to migrate" in again.output, again.output
        assert sorted(migrations.glob("*.py")) == files

        loaded = runner.invoke(cli.app, run)
        assert loaded.exit_code == 0 and "loaded" in loaded.output, loaded.output

        # A process that does not see the deployment's folder is told so, not left to Alembic's "can't locate".
        monkeypatch.setenv("LIDM_MIGRATIONS_DIR", str(deployment / "elsewhere"))
        get_settings.cache_clear()
        assert not db.is_current(engine, get_settings())
        lost = runner.invoke(cli.app, ["db", "upgrade"])
        assert lost.exit_code == 2 and "datasets_0001" in lost.output and "LIDM_MIGRATIONS_DIR" in _text(lost)
    finally:
        engine.dispose()
    assert _sdk_migrations() == sdk_before and _git_status(CORE) == git_before


def test_the_sdk_moving_on_after_a_deployments_migration_keeps_both_heads(deployment, monkeypatch):
    """A later lidm ships migration 0014: the deployment's branch stays where it is, the database goes to both heads,
    and the deployment's next migration follows its own and depends on 0014."""
    core = deployment / "sdk-migrations"  # the SDK's chain, copied so that a release can add to it here
    shutil.copytree(CORE, core, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(db, "MIGRATIONS", core)
    monkeypatch.setattr(db, "CORE_VERSIONS", core / "versions")
    settings = get_settings()
    catalog = load_catalog(settings.contracts_dir)
    sdk_head = max(db.heads(settings))
    engine = db.connect(settings)
    try:
        db.migrate(engine, settings)
        first = write_revision(settings, "veterans", full_metadata(catalog))
        assert first is not None and first.parent == (deployment / "migrations").resolve()
        db.ensure_current(engine, settings)
        with engine.connect() as conn:
            assert db.applied_revisions(conn) == {"datasets_0001"}  # the SDK's head is below it, as its dependency
        assert db.heads(settings) == {sdk_head, "datasets_0001"} and db.is_current(engine, settings)

        release = f"{int(sdk_head) + 1:04d}"
        (core / "versions" / f"{release}_release.py").write_text(
            f'"""A later release."""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\nrevision = "{release}"\n'
            f'down_revision = "{sdk_head}"\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade() -> None:\n'
            '    op.create_index("ix_lidm_release_probe", "lidm_batch", ["status"])\n\n\ndef downgrade() -> None:\n'
            '    op.drop_index("ix_lidm_release_probe", "lidm_batch")\n',
            "utf-8",
        )
        assert not db.is_current(engine, settings)
        db.ensure_current(engine, settings)
        with engine.connect() as conn:
            assert db.applied_revisions(conn) == {release, "datasets_0001"}
        assert db.is_current(engine, settings)

        pensions = (settings.contracts_dir / "veterans" / "entitled_persons.yaml").read_text("utf-8")
        (settings.contracts_dir / "veterans" / "pensions.yaml").write_text(
            pensions.replace(NEW, "veterans.pensions")
            .replace(TABLE, "veterans_pensions")
            .replace("entitled_persons", "pensions"),
            "utf-8",
        )
        second = write_revision(settings, "pensions", full_metadata(load_catalog(settings.contracts_dir)))
        assert second is not None and second.name == "datasets_0002_pensions.py"
        source = second.read_text("utf-8")
        assert "down_revision = 'datasets_0001'" in source and f"depends_on = '{release}'" in source
        assert "ix_lidm_release_probe" not in source  # lidm's own tables are never a deployment's to migrate
        db.ensure_current(engine, settings)
        assert db.is_current(engine, settings)
        assert db.heads(settings) == {release, "datasets_0002"}

        # The SDK's maintainers write the SDK's own migrations with core=True (`--core`), into the SDK's folder (here
        # the copy), numbered along its chain: there, lidm's own tables are what counts.
        own = write_revision(settings, "maintainers", full_metadata(load_catalog(settings.contracts_dir)), core=True)
        assert own is not None and own.parent == (core / "versions").resolve()
        assert own.name == f"{int(release) + 1:04d}_maintainers.py"
        source = own.read_text("utf-8")
        assert (
            f"down_revision = '{release}'" in source and "ix_lidm_release_probe" in source and "veterans" not in source
        )
    finally:
        engine.dispose()


def test_without_a_deployment_folder_the_sdks_migrations_alone_apply(tmp_path):
    core_only = db.heads(Settings(home=tmp_path, migrations_dir=tmp_path / "missing"))
    assert core_only == db.heads(Settings(home=tmp_path, migrations_dir=tmp_path))  # an empty folder: the same
    assert len(core_only) == 1
    settings = Settings(home=tmp_path, migrations_dir=tmp_path / "missing")
    engine = db.connect(settings)
    try:
        db.migrate(engine, settings)
        assert db.is_current(engine, settings)
        with engine.connect() as conn:
            assert db.applied_revisions(conn) == core_only
    finally:
        engine.dispose()
    assert not (tmp_path / "missing").exists()  # upgrading makes no folder
    # By default, migrations/ next to the contracts: in this checkout the repository's, which says what goes there.
    assert db.deployment_migrations(Settings(contracts_dir=None, migrations_dir=None)) == ROOT / "migrations"
    assert (ROOT / "migrations" / "README.md").is_file()


def test_nothing_is_written_into_an_installed_package(deployment, monkeypatch):
    sdk_before = _sdk_migrations()
    site = Path(sysconfig.get_paths()["purelib"])
    for folder in (CORE / "versions", site / "lidm_migrations"):
        monkeypatch.setenv("LIDM_MIGRATIONS_DIR", str(folder))
        get_settings.cache_clear()
        refused = runner.invoke(cli.app, ["db", "revision", "-m", "veterans"])
        text = _text(refused)
        assert refused.exit_code == 2 and "inside an installed package" in text and "LIDM_MIGRATIONS_DIR" in text
        assert not (site / "lidm_migrations").exists()
    assert _sdk_migrations() == sdk_before
    # Contracts installed with the package and no LIDM_MIGRATIONS_DIR: no folder to write to, and it says so.
    installed = Settings(contracts_dir=site / "lidm_contracts", migrations_dir=None)
    assert db.deployment_migrations(installed) is None
    with pytest.raises(ConfigError, match="LIDM_MIGRATIONS_DIR is not set"):
        write_revision(installed, "veterans", sa.MetaData())
