"""Attacks on the audit log (issue 15, item 4) on a real PostgreSQL with the three roles, and on SQLite.

The attacker holds the loader's keyring and gets past the append-only trigger (a superuser, or an owner who
disabled it). Against it: the seq high-water mark (a deleted number is never reused, a cut tail shows) and
checkpoints of the chain's head signed with the administrator's key, which the attacker does not hold.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_roles import Deployment, _as, _refused, deployment  # noqa: F401  (deployment is a fixture)
from typer.testing import CliRunner

from lidm import cli
from lidm.central import audit, db
from lidm.central.schema import audit as audit_table
from lidm.central.schema import audit_checkpoint, audit_head
from lidm.config import Settings
from lidm.keys import AuditKey, Keyring, generate_audit_key, generate_keyring, load_keyring

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/"


@contextlib.contextmanager
def _forge(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction past the append-only trigger: what a superuser, or an owner who disabled it, can do."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        yield conn


class Log:
    """The audit log of one central database: the loader appends, the administrator checkpoints, anyone verifies."""

    def __init__(self, loader: sa.Engine, owner: sa.Engine, attacker: sa.Engine, keyring: Keyring) -> None:
        self.loader, self.owner, self.attacker = loader, owner, attacker
        self.keyring = keyring  # the loader's (grants apply sealed its entry with it): the attacker has it too
        self.key: AuditKey = generate_audit_key()  # the administrator's: nobody else has it
        self.public = {self.key.key_id: base64.b64decode(self.key.public_key)}

    def append(self, n: int, action: str = "batch.load") -> None:
        for i in range(n):
            with self.loader.begin() as conn:
                detail = {"loaded": 10 + i, "operator": "loader"}
                audit.append(
                    conn, actor="loader", action=action, subject=f"{action}-{i}", detail=detail, keyring=self.keyring
                )

    def checkpoint(self) -> audit.Checkpoint:
        return audit.checkpoint(self.owner, self.key, keyring=self.keyring, public_keys=self.public)

    def verify(self) -> audit.AuditReport:
        return audit.verify(self.loader, self.keyring, self.public)

    def head(self) -> int:
        return self.verify().head_seq

    def reseal_from(self, k: int) -> None:
        """Rewrite entry k and re-chain and re-seal every entry after it with the loader's keyring."""
        with _forge(self.attacker) as conn:
            rows = [
                dict(r)
                for r in conn.execute(
                    sa.select(audit_table).where(audit_table.c.seq >= k - 1).order_by(audit_table.c.seq)
                ).mappings()
            ]
            prev = rows[0]["hash"]
            for row in rows[1:]:
                if row["seq"] == k:
                    row["detail"] = audit.canonical(json.loads(row["detail"]) | {"loaded": 0})
                row["prev_hash"] = prev
                row["hash"] = prev = audit.entry_hash(
                    row["seq"], row["at"], row["actor"], row["action"], row["subject"], row["detail"], row["prev_hash"]
                )
                row["seal"] = audit.seal(self.keyring, row["hash"])
                conn.execute(sa.update(audit_table).where(audit_table.c.seq == row["seq"]).values(**row))

    def drop_checkpoints(self) -> None:
        with _forge(self.attacker) as conn:
            conn.execute(sa.delete(audit_checkpoint))

    def delete(self, *, above: int, reset_head: bool = False) -> None:
        with _forge(self.attacker) as conn:
            conn.execute(sa.delete(audit_table).where(audit_table.c.seq > above))
            if reset_head:  # the careful attacker lowers the high-water mark too
                conn.execute(sa.update(audit_head).values(seq=above))


@pytest.fixture
def log(deployment: Deployment) -> Iterator[Log]:  # noqa: F811
    engines = [sa.create_engine(deployment.url(u)) for u in (deployment.loader, deployment.owner)]
    engines.append(sa.create_engine(ADMIN + deployment.database))
    result = Log(*engines, load_keyring(deployment.settings))
    result.append(6)
    try:
        yield result
    finally:
        for e in engines:
            e.dispose()


def test_deleting_the_last_entry_is_reported_and_its_number_never_reused(log: Log) -> None:
    log.append(1, "reidentify")
    head = log.head()
    log.checkpoint()
    assert log.verify().ok
    log.delete(above=head - 1)  # the re-identification goes
    report = log.verify()
    assert (report.ok, report.kind, report.broken_seq) == (False, "checkpoint", head), report.problem
    assert f"entry {head} is missing" in report.problem
    log.drop_checkpoints()  # a superuser can: the high-water mark alone still shows the cut
    without_checkpoint = audit.verify(log.loader, log.keyring)
    assert without_checkpoint.kind == "deleted" and f"entry {head} is missing" in without_checkpoint.problem
    log.append(1)  # a later entry: its number is not the deleted one's, and the gap names the deletion
    with log.loader.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(audit_table.c.seq))).scalar_one() == head + 1
    gap = audit.verify(log.loader, log.keyring)
    assert (gap.kind, gap.broken_seq) == ("deleted", head) and f"entry {head} is missing" in gap.problem


def test_deleting_the_tail_and_the_high_water_mark_is_reported_against_the_checkpoint(log: Log) -> None:
    head = log.head()
    mark = log.checkpoint()
    log.delete(above=head - 3, reset_head=True)
    report = log.verify()
    assert (report.kind, report.broken_seq) == ("checkpoint", head - 2) and "the log was cut" in report.problem
    # A superuser who also deletes the checkpoints fools chain, seals and mark; the head kept outside does not.
    log.drop_checkpoints()
    assert log.verify().ok
    report = audit.verify(log.loader, log.keyring, pinned={mark.seq: mark.head_hash})
    assert (report.kind, report.broken_seq) == ("checkpoint", head - 2) and "pinned outside" in report.problem


def test_a_rewrite_resealed_with_the_loaders_keyring_does_not_match_the_checkpoint(log: Log) -> None:
    head = log.head()
    log.checkpoint()
    log.append(2)  # entries after the checkpoint are fine
    assert log.verify().ok and log.verify().checkpoint_seq == head
    log.reseal_from(3)
    report = log.verify()
    assert report.sealed_through == report.head_seq  # chain and seals hold: the loader's keyring re-sealed them
    assert (report.ok, report.kind) == (False, "checkpoint") and "rewritten" in report.problem
    assert f"entry {head}" in report.problem


def test_a_checkpoint_the_administrator_did_not_sign_is_reported(log: Log) -> None:
    log.checkpoint()
    forger = generate_audit_key()
    report = log.verify()
    mark = audit.Checkpoint(
        None, report.head_seq, report.head_hash, report.entries, datetime(2026, 12, 1), "x", log.key.key_id, ""
    )
    fake = base64.b64encode(b"\0" * 64).decode()
    with _forge(log.attacker) as conn:
        values = {k: v for k, v in mark.__dict__.items() if k != "id"} | {"signature": fake}
        conn.execute(sa.insert(audit_checkpoint).values(**values))
    assert "did not make" in log.verify().problem
    with _forge(log.attacker) as conn:
        conn.execute(sa.delete(audit_checkpoint).where(audit_checkpoint.c.signer == "x"))
        values["key_id"], values["signer"] = forger.key_id, "y"
        conn.execute(sa.insert(audit_checkpoint).values(**values))
    assert "lacks" in log.verify().problem


def test_the_loader_cannot_change_the_log_or_checkpoint_it(log: Log, deployment: Deployment) -> None:  # noqa: F811
    with _as(deployment, deployment.loader) as conn:
        for sql in (
            "UPDATE lidm_audit SET detail = '{}'",
            "DELETE FROM lidm_audit WHERE seq = 1",
            "TRUNCATE lidm_audit",
        ):
            _refused(conn, sql)
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        audit.checkpoint(log.loader, log.key)
    with pytest.raises(sa.exc.DBAPIError, match="already"), log.owner.begin() as conn:  # no number used twice
        conn.execute(
            sa.insert(audit_table).values(
                seq=2, at=datetime(2026, 1, 1), actor="a", action="b", subject="c", detail="{}", prev_hash="x", hash="y"
            )
        )
    assert log.verify().ok


def test_the_commands_checkpoint_as_the_owner_and_verify_as_the_loader(
    log: Log,
    deployment: Deployment,  # noqa: F811
    tmp_path: Path,
    monkeypatch,
) -> None:
    key_file = tmp_path / "audit-key.json"
    runner = CliRunner()
    monkeypatch.setattr(cli.console, "width", 250)
    out = runner.invoke(cli.app, ["keys", "audit-init", "--path", str(key_file)])
    assert out.exit_code == 0 and key_file.stat().st_mode & 0o077 == 0, out.output
    public = json.loads(out.output[out.output.index("{") :])
    settings = deployment.settings.model_copy(update={"audit_key": key_file, "audit_public_keys": json.dumps(public)})
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    out = runner.invoke(cli.app, ["audit", "checkpoint"])
    assert out.exit_code == 0 and "checkpoint 1: entries 1-" in out.output, out.output
    out = runner.invoke(cli.app, ["audit", "verify", "--strict"])
    assert out.exit_code == 0 and "1 checkpoints agree with the chain (signatures checked)" in out.output, out.output
    log.reseal_from(2)
    out = runner.invoke(cli.app, ["audit", "verify", "--strict"])
    assert out.exit_code == 1 and "(checkpoint)" in out.output, out.output
    out = runner.invoke(cli.app, ["audit", "checkpoint"])  # a broken chain is not checkpointed
    assert out.exit_code != 0 and "not checkpointed" in out.output, out.output


def test_on_sqlite_the_chain_the_mark_and_checkpoints_still_show_a_cut(tmp_path: Path) -> None:
    engine = db.connect(Settings(home=tmp_path))
    db.migrate(engine)
    log = Log(engine, engine, engine, generate_keyring())
    log.append(4)
    log.checkpoint()
    assert log.verify().ok
    log.delete(above=2)
    assert log.verify().kind == "checkpoint"
    log.drop_checkpoints()
    assert audit.verify(engine, log.keyring).kind == "deleted"  # the mark, kept by an SQLite trigger
    engine.dispose()
