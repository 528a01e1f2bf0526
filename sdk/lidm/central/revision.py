"""Write a new migration for what the contracts need and the central database lacks: `lidm db revision`.

A department adding a dataset needs its table, and must not touch the SDK: the migration is written into the
deployment's own folder (LIDM_MIGRATIONS_DIR, migrations/ next to the contracts by default), never inside the
installed lidm, which a reinstall replaces. It goes on a branch of its own, labelled ``datasets``: the first one
starts the branch (no parent) and depends on the SDK's newest migration of the day, each later one follows the
branch's newest and depends on the SDK's newest again. The SDK's chain and the deployment's thus move on apart, an
upgrade of lidm never conflicts with a deployment's migrations, and `lidm db upgrade` applies every head.

Files are named ``datasets_0001_<message>.py``, numbered along the branch, for review beside the contracts they
serve. The SDK's maintainers write the SDK's own migrations (``0014_<message>.py``) with ``core=True``, from a
source checkout only.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from lidm.central import db
from lidm.central.schema import core_metadata
from lidm.config import Settings
from lidm.contracts import Contract
from lidm.errors import ConfigError

BRANCH = "datasets"  # the branch label of a deployment's own migrations
_NUMBERED = re.compile(rf"^{BRANCH}_(\d+)$")


def write_revision(settings: Settings, message: str, metadata: sa.MetaData, *, core: bool = False) -> Path | None:
    """Autogenerate a migration of what ``metadata`` has and a scratch database at every head lacks; None when there
    is nothing to migrate. Written into the deployment's folder (the SDK's own with ``core``); review it."""
    folder = _target(settings, core)
    with tempfile.TemporaryDirectory(prefix="lidm-revision-") as tmp:
        # The scratch database is the migrations' output alone: what the configured database holds does not count.
        scratch = settings.model_copy(update={"home": Path(tmp), "central_url": None, "admin_url": None})
        engine = db.connect(scratch)
        try:
            db.migrate(engine, settings)
            return _autogenerate(settings, engine, message, metadata, folder, core)
        finally:
            engine.dispose()


def missing_table(contract: Contract, settings: Settings) -> str:
    """What a run that finds its contract's table missing says: which table, and the two commands that make it."""
    folder = db.deployment_migrations(settings)
    where = f"in {folder}" if folder else "none: LIDM_MIGRATIONS_DIR is not set"
    return (
        f"the contract's table {contract.table} does not exist in the central database, and neither lidm's "
        f"migrations nor the deployment's ({where}) make it; nothing was written. A new dataset's table is made by "
        f'`lidm db revision -m "{contract.id}"`, which writes its migration into the deployment\'s folder (review '
        "it), then `lidm db upgrade`."
    )


def _target(settings: Settings, core: bool) -> Path:
    """Where the migration goes; never into an installed package."""
    if core:
        if db.in_site_packages(db.CORE_VERSIONS):
            raise ConfigError(
                f"--core writes the SDK's own migrations into {db.CORE_VERSIONS}, the installed package, which a "
                "reinstall replaces: write them in a source checkout of lidm. A deployment's new dataset needs no "
                "--core: its migration goes into LIDM_MIGRATIONS_DIR"
            )
        return db.CORE_VERSIONS
    folder = db.deployment_migrations(settings)
    if folder is None:
        raise ConfigError(
            "no folder for the deployment's migrations: LIDM_MIGRATIONS_DIR is not set and the contracts are the "
            "copy installed with lidm. Set LIDM_MIGRATIONS_DIR to a folder kept with the deployment's contracts "
            "(e.g. migrations/ next to them); lidm does not write into its installed package"
        )
    return folder


def _autogenerate(
    settings: Settings, engine: sa.Engine, message: str, metadata: sa.MetaData, folder: Path, core: bool
) -> Path | None:
    with db.quiet_alembic():
        from alembic import command
        from alembic.script import ScriptDirectory

    cfg = db.alembic_config(settings, engine)
    cfg.attributes["target_metadata"] = metadata
    cfg.cmd_opts = argparse.Namespace(quiet=True)  # its "Generating …" line: `lidm db revision` says where itself
    if not core:
        cfg.attributes["include_object"] = _datasets_only(metadata)
    script = ScriptDirectory.from_config(cfg)
    tips = [script.get_revision(h) for h in script.get_heads()]  # the newest of each branch
    core_folder = db.CORE_VERSIONS.resolve()
    sdk_head = next(t.revision for t in tips if t is not None and Path(t.path).resolve().parent == core_folder)
    options: dict[str, str | None] = {"head": sdk_head}
    if core:
        rev_id = f"{int(sdk_head) + 1:04d}" if sdk_head.isdigit() else None
    else:
        numbers = [int(m.group(1)) for s in script.walk_revisions() if (m := _NUMBERED.match(s.revision))]
        rev_id = f"{BRANCH}_{max(numbers, default=0) + 1:04d}"
        ours = [t.revision for t in tips if t is not None and BRANCH in t.branch_labels]
        # The branch's newest, or a new base: either way after the SDK's newest, which the scratch database had.
        options = (
            {"head": ours[0], "depends_on": sdk_head}
            if ours
            else {"head": "base", "branch_label": BRANCH, "depends_on": sdk_head}
        )
    slug = "".join(ch if ch.isalnum() else "_" for ch in message.lower()).strip("_")[:40]
    cfg.set_main_option("file_template", f"%%(rev)s_{slug}")
    with db.quiet_alembic():
        result = command.revision(
            cfg, message=message, autogenerate=True, rev_id=rev_id, version_path=str(folder), **options
        )
    scripts = result if isinstance(result, list) else [result]  # Alembic makes the folder when it writes a file
    return Path(scripts[0].path) if scripts and scripts[0] is not None else None


def _datasets_only(metadata: sa.MetaData) -> Callable[..., bool]:
    """Autogenerate's filter for a deployment's migration: the contracts' dataset tables and nothing else.

    lidm's own tables are the SDK's chain's (a difference there means the SDK's migrations lag its code, the SDK's
    to fix); a table no contract describes is never dropped by autogenerate (a dataset's rows go only on purpose,
    in a migration written by hand)."""
    datasets = set(metadata.tables) - set(core_metadata.tables)

    def include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in datasets

    return include
